"""The reference preprocessors (`reference_only`, `reference_adain`, `reference_adain+attn`): the unit's image
steers the generation through the UNet's own features; there is no model file.

How, following the A1111 ControlNet extension (read from its public source, `scripts/hook.py`; the idea is
lllyasviel's "reference-only" control): at each step the reference image's latents, noised to the step's
timestep, first go through the UNet ("write"): every self-attention layer keeps its input tokens and every resnet
its output's per-channel mean and variance. Then the real pass ("read"):
- attention (`reference_only`, `+attn`): self-attention attends to its own tokens and the reference's (keys and
  values from both) in the layers the weight selects: layers sorted from the widest, layer i of n joins when
  `i / n < weight`;
- AdaIN (`reference_adain`, `+attn`): a selected resnet's output is renormalised to the reference's per-channel
  mean and standard deviation; the middle block always, a down block w of n when `1 - w / n <= weight`, an up
  block w of n when `w / n <= weight` (the deep blocks first).
Style fidelity mixes, for the unconditional half of the CFG batch only, the plain output (fidelity) with the
steered one (1 - fidelity): with 1 the unconditional prediction stays plain and CFG pushes towards the reference.
"Balanced" uses the unit's threshold A (the extension's "Style Fidelity" slider), "My prompt is more important"
0 and "ControlNet is more important" 1.

Why a stand-in UNet (as for T2I-Adapters, `adapter_unet.py`): the write pass must run inside each denoising step,
with the pipeline's own timestep, conditioning and scheduler. The processors and hooks are put on the real UNet
for the duration of one call and taken off after it, so the loaded model is never left changed. A unit acts on
the calls inside its guidance window (the rule of `adapter_unet.py`). On an inpainting UNet (9 input channels)
the reference latents take the call's own mask and masked-image channels.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.resnet import ResnetBlock2D

from webui.engine.control.modes import BALANCED, CONTROL_MORE

REFERENCE_MODULES = ("reference_only", "reference_adain", "reference_adain+attn")
_WRITE, _READ = "write", "read"


@dataclass(frozen=True)
class ReferenceInput:
    """One reference unit at one size: its image's latents (already scaled for the UNet) and settings."""

    module: str
    latents: torch.Tensor
    weight: float
    start: float
    end: float
    fidelity: float

    @property
    def attention(self) -> bool:
        return self.module in ("reference_only", "reference_adain+attn")

    @property
    def adain(self) -> bool:
        return self.module in ("reference_adain", "reference_adain+attn")


def style_fidelity(mode: str, threshold_a: float) -> float:
    """The unit's style fidelity: threshold A in "Balanced" (0.5 when unset), else fixed by the mode."""
    if mode == BALANCED:
        return min(1.0, max(0.0, threshold_a if threshold_a >= 0 else 0.5))
    return 1.0 if mode == CONTROL_MORE else 0.0


def _blend(steered: torch.Tensor, plain: Callable[[], torch.Tensor], fidelity: float, cfg: bool) -> torch.Tensor:
    """`steered`, with its unconditional half (the first, in diffusers' CFG batch) mixed towards `plain()`."""
    if not cfg or fidelity <= 0 or steered.shape[0] % 2:
        return steered
    half = steered.shape[0] // 2
    out = steered.clone()
    out[:half] = fidelity * plain()[:half] + (1.0 - fidelity) * steered[:half]
    return out


class _Step:
    """One call's write/read state: the mode, the active units, and what the write pass kept."""

    def __init__(self, units: list[ReferenceInput], cfg: bool):
        self.units = units
        self.cfg = cfg
        self.mode = _WRITE
        self.unit = 0  # the unit being written
        self.tokens: dict[int, list[tuple[int, torch.Tensor]]] = {}
        self.stats: dict[int, list[tuple[int, torch.Tensor, torch.Tensor]]] = {}

    def fidelity(self, indices: list[int]) -> float:
        return sum(self.units[i].fidelity for i in indices) / len(indices)


class _Attention:
    """A self-attention processor that keeps (write) or adds (read) the reference tokens."""

    def __init__(self, original, step: _Step, rank: float, key: int):
        self.original = original
        self.step = step
        self.rank = rank
        self.key = key

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        step = self.step
        if step.mode == _WRITE:
            if step.units[step.unit].attention and self.rank < step.units[step.unit].weight:
                step.tokens.setdefault(self.key, []).append((step.unit, hidden_states.detach()))
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        kept = step.tokens.get(self.key, [])
        if not kept or encoder_hidden_states is not None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        context = torch.cat([hidden_states, *(tokens for _, tokens in kept)], dim=1)
        steered = self.original(attn, hidden_states, context, attention_mask, **kwargs)
        return _blend(steered, lambda: self.original(attn, hidden_states, None, attention_mask, **kwargs),
                      step.fidelity([unit for unit, _ in kept]), step.cfg)


def _attention_layers(unet) -> list[BasicTransformerBlock]:
    """Transformer blocks with self-attention, widest first (the extension's order)."""
    blocks = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock) and m.attn1 is not None]
    return sorted(blocks, key=lambda block: -int(block.norm1.normalized_shape[0]))


def _adain_ranks(unet) -> dict[int, float]:
    """`id(resnet)` -> the weight from which its block joins AdaIN (see the module docstring)."""
    ranks: dict[int, float] = {}
    for resnet in getattr(unet.mid_block, "resnets", ()):
        ranks[id(resnet)] = 0.0
    for blocks, rank in ((unet.down_blocks, lambda w, n: 1.0 - w / n), (unet.up_blocks, lambda w, n: w / n)):
        for index, block in enumerate(blocks):
            for resnet in getattr(block, "resnets", ()):
                ranks[id(resnet)] = rank(index, len(blocks))
    return ranks


@dataclass(frozen=True)
class _Layout:
    """Where the reference passes act in one UNet, found once per pipeline call (not at every step)."""

    attention: list[BasicTransformerBlock]
    resnets: list[ResnetBlock2D]
    ranks: dict[int, float]

    @classmethod
    def of(cls, unet) -> _Layout:
        ranks = _adain_ranks(unet)
        resnets = [m for m in unet.modules() if isinstance(m, ResnetBlock2D) and id(m) in ranks]
        return cls(_attention_layers(unet), resnets, ranks)


@contextlib.contextmanager
def _installed(layout: _Layout, step: _Step) -> Iterator[None]:
    """The processors and resnet hooks for one call; removed afterwards whatever happens."""
    layers, ranks = layout.attention, layout.ranks
    originals = [(block.attn1, block.attn1.processor) for block in layers]
    for index, block in enumerate(layers):
        block.attn1.processor = _Attention(block.attn1.processor, step, index / max(1, len(layers)), index)
    handles = []

    def adain(module, args, output):
        key, rank = id(module), ranks[id(module)]
        if step.mode == _WRITE:
            unit = step.units[step.unit]
            if unit.adain and rank <= unit.weight:
                var, mean = torch.var_mean(output.float(), dim=(2, 3), keepdim=True, correction=0)
                step.stats.setdefault(key, []).append((step.unit, mean, var))
            return output
        kept = step.stats.get(key, [])
        if not kept:
            return output
        mean_ref = sum(mean for _, mean, _ in kept) / len(kept)
        std_ref = (sum(var for _, _, var in kept) / len(kept)).clamp_min(1e-5).sqrt()
        var, mean = torch.var_mean(output.float(), dim=(2, 3), keepdim=True, correction=0)
        steered = ((output.float() - mean) / var.clamp_min(1e-5).sqrt() * std_ref + mean_ref).to(output.dtype)
        return _blend(steered, lambda: output, step.fidelity([unit for unit, _, _ in kept]), step.cfg)

    try:
        handles.extend(module.register_forward_hook(adain) for module in layout.resnets)
        yield
    finally:
        for handle in handles:
            handle.remove()
        for attention, processor in originals:
            attention.processor = processor


class ReferenceUNet(torch.nn.Module):
    """The UNet with the reference units' write pass before each call (see the module docstring). `scheduler`
    gives the pipeline's scheduler (it noises the reference latents to the call's timestep); `seed` the noise."""

    def __init__(self, unet: torch.nn.Module, units: list[ReferenceInput], scheduler: Callable[[], object],
                 steps: Callable[[], int], cfg_batch: bool, seed: int):
        super().__init__()
        self.unet = unet
        self._units = units
        self._scheduler = scheduler
        self._steps = steps
        self._cfg = cfg_batch
        self._generator = torch.Generator().manual_seed(seed)
        self._calls = 0
        self._layout = _Layout.of(unet)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["unet"], name)

    def _reference_input(self, unit: ReferenceInput, sample: torch.Tensor, timestep) -> torch.Tensor:
        scheduler = self._scheduler()
        latents = unit.latents.to(sample.device, torch.float32)
        noise = torch.randn(latents.shape, generator=self._generator).to(latents.device)
        t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep)
        t = t.reshape(-1)[:1].to(latents.device)
        noised = scheduler.scale_model_input(scheduler.add_noise(latents, noise, t), t[0])
        noised = noised.to(sample.dtype).expand(sample.shape[0], *noised.shape[1:])
        if sample.shape[1] > noised.shape[1]:  # an inpainting UNet: the call's own mask and masked image
            noised = torch.cat([noised, sample[:, noised.shape[1]:]], dim=1)
        return noised

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, *args, **kwargs):
        total, call = self._steps(), self._calls
        self._calls += 1
        active = [u for u in self._units if u.weight > 0 and call / total >= u.start and (call + 1) / total <= u.end]
        if not active:
            return self.unet(sample, timestep, encoder_hidden_states, *args, **kwargs)
        step = _Step(active, self._cfg)
        plain_kwargs = {k: v for k, v in kwargs.items() if k not in (
            "down_block_additional_residuals", "mid_block_additional_residual",
            "down_intrablock_additional_residuals")}
        with _installed(self._layout, step):
            for index, unit in enumerate(active):
                step.unit = index
                self.unet(self._reference_input(unit, sample, timestep), timestep, encoder_hidden_states, *args,
                          **plain_kwargs)
            step.mode = _READ
            return self.unet(sample, timestep, encoder_hidden_states, *args, **kwargs)
