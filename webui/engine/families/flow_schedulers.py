"""Flow-matching samplers under A1111's names, and the schedule's shift.

Why a small table of its own: the SD sampler table (`core/samplers.py`) maps names to DDPM-type schedulers that
cannot sample a flow model. A flow family offers the names of `core/model_families.FLOW_SAMPLERS`; each maps to a
diffusers flow scheduler here. The shift: 0 in a request means the model's own (its scheduler config: AuraFlow
1.73, Flux schnell 1.0, Flux dev resolution-dependent, `exp(mu)` for the image's token count, which is exactly
what the dynamic shifting of `FlowMatchEulerDiscreteScheduler` computes, so every sampler can use it).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import diffusers
import numpy as np

from webui.core.errors import ValidationError

# name -> (scheduler class, fixed kwargs)
_FLOW_SAMPLERS: dict[str, tuple[str, dict[str, object]]] = {
    "Euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "Euler a": ("FlowMatchEulerDiscreteScheduler", {"stochastic_sampling": True}),
    "Heun": ("FlowMatchHeunDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction",
                                                  "algorithm_type": "dpmsolver++", "solver_order": 2}),
}
_SCHEDULE_KWARGS: dict[str, dict[str, object]] = {
    "Automatic": {}, "Uniform": {}, "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
}
# Schedules beyond the plain one, where diffusers computes them on flow sigmas: its flow Heun has none, and its
# DPM-Solver converts Karras/Exponential from the DDPM betas, not the flow sigmas (measured: sigmas up to 157).
_EXTRA_SCHEDULES = {"Euler": ("Karras", "Exponential"), "Euler a": ("Karras", "Exponential")}
# The key that carries the shift differs between the scheduler classes.
_SHIFT_KEY = {"DPMSolverMultistepScheduler": "flow_shift"}


def effective_shift(requested: float, model_config: Mapping[str, object], image_tokens: int) -> float:
    """The shift to sample with: the request's when > 0, else the model's (dynamic: from the token count)."""
    if requested > 0:
        return float(requested)
    if model_config.get("use_dynamic_shifting"):
        base_len, max_len = int(model_config.get("base_image_seq_len", 256)), int(
            model_config.get("max_image_seq_len", 4096))
        base, top = float(model_config.get("base_shift", 0.5)), float(model_config.get("max_shift", 1.15))
        slope = (top - base) / (max_len - base_len)
        return math.exp(image_tokens * slope + base - slope * base_len)
    return float(model_config.get("shift", 1.0))


def schedule_name(schedule: str) -> str:
    """'Automatic' is the plain (uniform in sigma, then shifted) schedule the model cards use."""
    return "Uniform" if schedule == "Automatic" else schedule


def make_flow_scheduler(sampler: str, schedule: str, shift: float, steps: int):
    """A fresh scheduler with its timesteps set for `steps`. `ValidationError` for a name or schedule the flow
    samplers do not have (e.g. Karras with Heun, which diffusers' flow Heun does not implement)."""
    if sampler not in _FLOW_SAMPLERS:
        raise ValidationError(f"Sampler '{sampler}' is not a flow-matching sampler "
                              f"(available: {', '.join(_FLOW_SAMPLERS)}).")
    class_name, fixed = _FLOW_SAMPLERS[sampler]
    cls = getattr(diffusers, class_name)
    extra = _SCHEDULE_KWARGS.get(schedule)
    if extra is None or (extra and schedule not in _EXTRA_SCHEDULES.get(sampler, ())):
        allowed = ", ".join(("Automatic", "Uniform", *_EXTRA_SCHEDULES.get(sampler, ())))
        raise ValidationError(f"Schedule type '{schedule}' cannot be used with the flow sampler '{sampler}' "
                              f"(available: {allowed}).")
    kwargs = {**fixed, **extra, _SHIFT_KEY.get(class_name, "shift"): shift}
    scheduler = cls(**kwargs)
    if class_name == "FlowMatchEulerDiscreteScheduler" and not extra:
        # What the Flux and AuraFlow pipelines pass: sigmas evenly from 1 to 1/steps, then shifted.
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps).tolist())
    else:
        scheduler.set_timesteps(steps)
    return scheduler
