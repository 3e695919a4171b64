"""Turn an A1111 sampler + schedule type into a fresh diffusers scheduler for one request.

Why fresh per request: schedulers carry run state (step index, noise samplers), and pipelines made with
`from_pipe` share the scheduler object; building one per request keeps requests independent.
"""
from __future__ import annotations

import inspect

import diffusers
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from webui.core.errors import SamplerError
from webui.core.samplers import SCHEDULE_KWARGS, get_sampler, resolve_schedule, split_legacy_name

# Keys of the model's own scheduler config that describe the noise schedule it was trained with; the rest of
# the stored config (solver choices of whatever scheduler the file came with) must not leak into ours.
_MODEL_SCHEDULE_KEYS = (
    "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type",
    "steps_offset", "rescale_betas_zero_snr", "timestep_spacing",
)


def _accepted_kwargs(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def make_scheduler(model_config: dict, sampler_name: str, schedule: str = "Automatic",
                   seed: int | None = None) -> tuple[SchedulerMixin, str, str]:
    """Build the scheduler; returns it with the canonical sampler name and the resolved schedule type.

    Raises `SamplerError` for unknown names and for schedule types the sampler cannot use in diffusers.
    """
    name, schedule = split_legacy_name(sampler_name, schedule)
    spec = get_sampler(name)
    resolved = resolve_schedule(spec, schedule)
    cls = getattr(diffusers, spec.scheduler_class)
    accepted = _accepted_kwargs(cls)
    config = {k: v for k, v in model_config.items() if k in _MODEL_SCHEDULE_KEYS}
    config.setdefault("timestep_spacing", "leading")
    config.setdefault("steps_offset", 1)
    schedule_kwargs = SCHEDULE_KWARGS[resolved]
    unsupported = [k for k in schedule_kwargs if k not in accepted]
    if unsupported:
        raise SamplerError(f"Schedule type '{resolved}' is not available with sampler '{spec.name}'. "
                           f"Use 'Automatic' or 'Uniform'.")
    kwargs = {**config, **spec.kwargs, **schedule_kwargs}
    if "noise_sampler_seed" in accepted and seed is not None:
        kwargs["noise_sampler_seed"] = seed
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    try:
        scheduler = cls(**kwargs)
    except (ValueError, ImportError) as exc:
        raise SamplerError(f"Sampler '{spec.name}' with schedule '{resolved}' cannot be used: {exc}") from exc
    return scheduler, spec.name, resolved
