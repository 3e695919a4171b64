"""T2I-Adapter units in a generation: their features added inside the UNet's down blocks.

Why a stand-in UNet: diffusers' adapter pipelines cannot be combined with its ControlNet pipelines, but the UNet
itself takes adapter features (`down_intrablock_additional_residuals`) next to ControlNet residuals. For one
pipeline call the view gets this module (through `share_modules`, like AND's `ComposableUNet`), which wraps the
real UNet and adds the units' features to each call inside the units' guidance windows. Nothing is patched on
the real UNet, so a plain pipeline, a ControlNet pipeline, img2img, inpainting and the hires pass all take it.

Per unit, as with ControlNet units (`modes.py`): features times the weight; "My prompt is more important" scales
level i of L by `0.825 ** (L - 1 - i)` (the early, high-resolution levels count least); "ControlNet is more
important" does the same and adds them to the conditional half of the CFG batch only. A unit acts on call k of N
when `k / N >= start` and `(k + 1) / N <= end`, the rule diffusers' ControlNet pipelines apply to their units.
The features are computed once per pipeline call (an adapter does not depend on the timestep).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from webui.core.errors import GenerationError
from webui.engine.control.modes import BALANCED, CONTROL_MORE, SOFT_INJECTION_BASE


@dataclass(frozen=True)
class AdapterInput:
    """One T2I-Adapter unit at one size: the model, its map ([1, C, H, W] in [0, 1]) and the unit's settings."""

    model: torch.nn.Module
    image: torch.Tensor
    weight: float
    start: float
    end: float
    mode: str


def run_steps(scheduler) -> int:
    """Denoiser calls in the pipeline's loop: its timesteps from the begin index on (img2img starts later)."""
    begin = getattr(scheduler, "begin_index", None) or 0
    return max(1, len(scheduler.timesteps) - begin)


def feature_sizes(unet: torch.nn.Module, height: int, width: int) -> list[tuple[int, int]]:
    """The size each down block takes its adapter feature at: a cross-attention block adds it before its
    downsampler, a plain block after it (diffusers' UNet); a downsampler halves, rounding up."""
    sizes = []
    for block in unet.down_blocks:
        after = (math.ceil(height / 2), math.ceil(width / 2)) if getattr(block, "downsamplers", None) else \
            (height, width)
        sizes.append((height, width) if getattr(block, "has_cross_attention", False) else after)
        height, width = after
    return sizes


class AdapterUNet(torch.nn.Module):
    """The UNet with the units' adapter features added. `steps` tells the number of calls of the pipeline's loop
    (read at the first call, when the pipeline has set its timesteps); `cfg_batch` whether the batch holds the
    unconditional half first."""

    def __init__(self, unet: torch.nn.Module, units: list[AdapterInput], steps: Callable[[], int],
                 cfg_batch: bool):
        super().__init__()
        self.unet = unet
        self._units = units
        self._steps = steps
        self._cfg_batch = cfg_batch
        self._calls = 0
        self._features: list[list[torch.Tensor]] | None = None

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["unet"], name)

    def _unit_features(self, unit: AdapterInput, sample: torch.Tensor) -> list[torch.Tensor]:
        image = unit.image
        if int(unit.model.config.in_channels) == 1 and image.shape[1] != 1:
            image = image.mean(dim=1, keepdim=True)
        with torch.no_grad():
            features = list(unit.model(image.to(unit.model.dtype)))
        sizes = feature_sizes(self.unet, sample.shape[-2], sample.shape[-1])
        levels = len(sizes)
        widths = [int(w) for w in self.unet.config.block_out_channels]
        scales = [unit.weight * (1.0 if unit.mode == BALANCED else SOFT_INJECTION_BASE ** (len(features) - 1 - i))
                  for i in range(len(features))]
        out = []
        for index, (feature, scale) in enumerate(zip(features, scales, strict=True)):
            if index < levels:
                if feature.shape[1] != widths[index]:
                    raise GenerationError(f"The T2I-Adapter gives {feature.shape[1]} channels at level {index}, the "
                                          f"checkpoint's UNet takes {widths[index]}: it was made for another model.")
                if tuple(feature.shape[-2:]) != sizes[index]:  # a size off the full stride, or another block layout
                    feature = F.interpolate(feature.float(), size=sizes[index], mode="bilinear")
            out.append((feature * scale).to(sample.device, sample.dtype))
        return out

    def _batch(self, feature: torch.Tensor, count: int, cond_only: bool) -> torch.Tensor:
        if cond_only:
            half = feature.expand(count // 2, *feature.shape[1:])
            return torch.cat([torch.zeros_like(half), half])
        return feature.expand(count, *feature.shape[1:])

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, *args, **kwargs):
        if self._features is None:
            self._features = [self._unit_features(unit, sample) for unit in self._units]
        total, call = self._steps(), self._calls
        self._calls += 1
        summed: list[torch.Tensor] | None = None
        for unit, features in zip(self._units, self._features, strict=True):
            if call / total < unit.start or (call + 1) / total > unit.end or unit.weight == 0:
                continue
            cond_only = unit.mode == CONTROL_MORE and self._cfg_batch and sample.shape[0] % 2 == 0
            batched = [self._batch(f, sample.shape[0], cond_only) for f in features]
            summed = batched if summed is None else [a + b for a, b in zip(summed, batched, strict=True)]
        if summed is not None:
            kwargs["down_intrablock_additional_residuals"] = list(summed)  # the UNet pops from the list
        return self.unet(sample, timestep, encoder_hidden_states, *args, **kwargs)
