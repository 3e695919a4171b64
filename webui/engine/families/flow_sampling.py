"""One flow-matching sampling loop for every flow family: txt2img, img2img (from a noised image) and inpainting
(the unmasked latents pinned to the noised original after each step).

Why our own loop rather than the diffusers pipelines' `__call__`: the pipelines differ per family and task (AuraFlow
has no img2img pipeline; Flux's pipelines pass `sigmas`/`mu`, which only the Euler scheduler accepts, so Heun and
DPM++ could not be offered), and A1111's behaviours (CPU noise per seed, prompt editing per step, interrupt and
skip after each step, exact step counts for img2img) would each need a different workaround. The loop is the
textbook one: `x <- scheduler.step(v(x, sigma), t, x)` over the scheduler's timesteps, `v` from the family's
denoiser adapter (`flow_denoisers.py`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from webui.engine.families.flow_denoisers import FlowDenoiser
from webui.engine.families.flow_prompts import FlowConditioning

CondAt = Callable[[int], tuple[FlowConditioning, FlowConditioning]]


@dataclass(frozen=True)
class Inpainting:
    """Packed original latents, the packed mask (1 = redraw) and the packed noise used to re-noise them."""

    original: torch.Tensor
    mask: torch.Tensor
    noise: torch.Tensor


@dataclass(frozen=True)
class FlowPass:
    """One sampling pass. `start` is the first sampler step (img2img skips `steps - int(steps * strength)`);
    `on_step(done)` is called after each sampler step with the count done and returns True to stop."""

    denoiser: FlowDenoiser
    scheduler: object
    steps: int
    cond_at: CondAt
    cfg_scale: float
    guidance: float | None
    grid: tuple[int, int]
    generators: list[torch.Generator]
    on_step: Callable[[int], bool]
    start: int = 0
    inpainting: Inpainting | None = None


def start_sigma(scheduler, start: int) -> float:
    """The noise level sampling starts from after skipping `start` sampler steps."""
    return float(scheduler.sigmas[start * scheduler.order])


def noised(latents: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """The flow-matching forward process: `x_sigma = (1 - sigma) x0 + sigma noise`."""
    return (1 - sigma) * latents + sigma * noise


def _settled(scheduler) -> bool:
    """False between the two halves of a Heun step (the state there is not on the sampling path)."""
    return bool(getattr(scheduler, "state_in_first_order", True))


def _pin_unmasked(scheduler, latents: torch.Tensor, inpainting: Inpainting) -> torch.Tensor:
    index = scheduler.step_index
    sigma = float(scheduler.sigmas[index]) if index is not None and index < len(scheduler.sigmas) else 0.0
    original = noised(inpainting.original, inpainting.noise, sigma)
    return inpainting.mask * latents + (1 - inpainting.mask) * original


def run_flow_pass(flow: FlowPass, latents: torch.Tensor) -> torch.Tensor:
    """Sample from `latents` (packed, already at the start noise level); returns the packed result."""
    scheduler = flow.scheduler
    order = int(scheduler.order)
    begin = flow.start * order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    dtype = flow.denoiser.dtype
    count = latents.shape[0]
    generator = flow.generators if len(flow.generators) == count else flow.generators[:1]
    for index, timestep in enumerate(scheduler.timesteps[begin:]):
        step = (begin + index) // order
        cond, uncond = flow.cond_at(step)
        sigma = (timestep / 1000).expand(count).to(latents.device, dtype)
        velocity = flow.denoiser.predict(latents.to(dtype), sigma, cond, uncond, flow.cfg_scale, flow.guidance,
                                         flow.grid)
        latents = scheduler.step(velocity, timestep, latents, generator=generator, return_dict=False)[0]
        if not _settled(scheduler):
            continue
        if flow.inpainting is not None:
            latents = _pin_unmasked(scheduler, latents, flow.inpainting)
        if flow.on_step(step + 1 - flow.start):
            break
    return latents
