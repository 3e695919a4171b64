"""The extension's control modes, per unit, on top of diffusers' `MultiControlNetModel`.

How the A1111 ControlNet extension maps them (read from its public source, `scripts/controlnet.py` and
`scripts/hook.py` of Mikubill/sd-webui-controlnet; the scales come from lllyasviel's original ControlNet code,
its "guess mode"):
- "Balanced": the unit's outputs times its weight, added to both halves of the CFG batch.
- "My prompt is more important" (`soft_injection`): output i of the 13 (12 down + middle, in input-block order)
  is scaled by `weight * 0.825 ** (12 - i)`, so the early, high-resolution outputs count least.
- "ControlNet is more important" (`soft_injection` + `cfg_injection`): the same per-layer scales, and the
  control is added to the conditional half only (the unconditional half gets none), so CFG amplifies it.

Diffusers' `guess_mode` does about the same as the last mode but for all units at once (its scales are a log
space from 0.1 to 1), so modes are applied here, per unit, and the pipeline runs with `guess_mode=False`. For the
conditional-only mode the unit runs on the conditional half of the batch only (half the work), and zeros fill
the other half. SDXL ControlNets have 10 outputs; as in the extension, their scales are the first 10 of the 13.
"""
from __future__ import annotations

import torch
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

from webui.core.control import CONTROL_MODES

BALANCED, PROMPT_MORE, CONTROL_MORE = CONTROL_MODES
SOFT_INJECTION_BASE = 0.825
SOFT_INJECTION_LAYERS = 13


def soft_scales(count: int) -> list[float]:
    """Per-output scales of "My prompt is more important" (and of "ControlNet is more important")."""
    return [SOFT_INJECTION_BASE ** float(SOFT_INJECTION_LAYERS - 1 - i) for i in range(count)]


class ModedMultiControlNet(MultiControlNetModel):
    """`MultiControlNetModel` with one control mode per net. `cfg_batch` says whether the pipeline's batch holds
    the unconditional half first (diffusers' order) and is set by the caller before each pipeline call."""

    def __init__(self, controlnets, modes: list[str]):
        super().__init__(controlnets)
        self.modes = list(modes)
        self.cfg_batch = True

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale,
                class_labels=None, timestep_cond=None, attention_mask=None, added_cond_kwargs=None,
                cross_attention_kwargs=None, guess_mode: bool = False, return_dict: bool = True):
        down_total, mid_total = None, None
        for image, scale, net, mode in zip(controlnet_cond, conditioning_scale, self.nets, self.modes, strict=True):
            cond_only = mode == CONTROL_MORE and self.cfg_batch and sample.shape[0] % 2 == 0
            args = (sample, timestep, encoder_hidden_states, image, added_cond_kwargs)
            if cond_only:
                args = tuple(_second_half(value) for value in args)
            down, mid = net(sample=args[0], timestep=args[1], encoder_hidden_states=args[2], controlnet_cond=args[3],
                            conditioning_scale=scale, class_labels=class_labels, timestep_cond=timestep_cond,
                            attention_mask=attention_mask, added_cond_kwargs=args[4],
                            cross_attention_kwargs=cross_attention_kwargs, guess_mode=False, return_dict=False)
            outputs = [*down, mid]
            if mode != BALANCED:
                outputs = [out * factor for out, factor in zip(outputs, soft_scales(len(outputs)), strict=True)]
            if cond_only:
                outputs = [torch.cat([torch.zeros_like(out), out]) for out in outputs]
            down, mid = outputs[:-1], outputs[-1]
            if down_total is None:
                down_total, mid_total = down, mid
            else:
                down_total = [a + b for a, b in zip(down_total, down, strict=True)]
                mid_total = mid_total + mid
        return down_total, mid_total


def _second_half(value):
    """The conditional half of a CFG batch (tensors, or the tensors of SDXL's added-conditions dict)."""
    if isinstance(value, dict):
        return {key: _second_half(item) for key, item in value.items()}
    if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] % 2 == 0 and value.shape[0] > 1:
        return value[value.shape[0] // 2:]
    return value
