"""A1111 sampler and schedule names, as data. The engine turns a `SamplerSpec` into a diffusers scheduler.

Why a table: A1111 users type these exact names (in the UI, in infotext, through the API); keeping the mapping
in one place means the UI lists, the API validation and the engine all agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from webui.core.errors import SamplerError

SCHEDULE_TYPES: tuple[str, ...] = ("Automatic", "Uniform", "Karras", "Exponential", "SGM Uniform")

# Scheduler-config keywords that select each schedule type (applied on top of the sampler's own kwargs).
SCHEDULE_KWARGS: dict[str, dict[str, object]] = {
    "Uniform": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
}


@dataclass(frozen=True)
class SamplerSpec:
    """One A1111 sampler: its diffusers scheduler class, fixed config kwargs and the automatic schedule."""

    name: str
    scheduler_class: str
    kwargs: dict[str, object] = field(default_factory=dict)
    automatic_schedule: str = "Uniform"
    aliases: tuple[str, ...] = ()
    stochastic: bool = False


SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2},
                "Karras", ("k_dpmpp_2m",)),
    SamplerSpec("DPM++ SDE", "DPMSolverSDEScheduler", {}, "Karras", ("k_dpmpp_sde",), stochastic=True),
    SamplerSpec("DPM++ 2M SDE", "DPMSolverMultistepScheduler",
                {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}, "Exponential", ("k_dpmpp_2m_sde",),
                stochastic=True),
    SamplerSpec("DPM++ 3M SDE", "DPMSolverMultistepScheduler",
                {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, "Exponential", ("k_dpmpp_3m_sde",),
                stochastic=True),
    SamplerSpec("DPM++ 2S a", "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2},
                "Karras", ("k_dpmpp_2s_a",)),
    SamplerSpec("Euler a", "EulerAncestralDiscreteScheduler", {}, "Uniform", ("k_euler_a", "k_euler_ancestral"),
                stochastic=True),
    SamplerSpec("Euler", "EulerDiscreteScheduler", {}, "Uniform", ("k_euler",)),
    SamplerSpec("LMS", "LMSDiscreteScheduler", {}, "Uniform", ("k_lms",)),
    SamplerSpec("Heun", "HeunDiscreteScheduler", {}, "Uniform", ("k_heun",)),
    SamplerSpec("DPM2", "KDPM2DiscreteScheduler", {}, "Karras", ("k_dpm_2",)),
    SamplerSpec("DPM2 a", "KDPM2AncestralDiscreteScheduler", {}, "Karras", ("k_dpm_2_a",), stochastic=True),
    SamplerSpec("DDIM", "DDIMScheduler", {"set_alpha_to_one": False}, "Uniform", ("ddim",)),
    SamplerSpec("PLMS", "PNDMScheduler", {"skip_prk_steps": True}, "Uniform", ("plms",)),
    SamplerSpec("UniPC", "UniPCMultistepScheduler", {}, "Uniform", ("unipc",)),
    SamplerSpec("LCM", "LCMScheduler", {}, "Uniform", ("lcm",)),
)

_BY_NAME: dict[str, SamplerSpec] = {}
for _spec in SAMPLERS:
    _BY_NAME[_spec.name.lower()] = _spec
    for _alias in _spec.aliases:
        _BY_NAME[_alias.lower()] = _spec


def sampler_names() -> list[str]:
    return [spec.name for spec in SAMPLERS]


def get_sampler(name: str) -> SamplerSpec:
    """Look a sampler up by its A1111 name or alias (case-insensitive); `SamplerError` if unknown."""
    spec = _BY_NAME.get(name.strip().lower())
    if spec is None:
        raise SamplerError(
            f"Unknown sampler '{name}'. Available samplers: {', '.join(sampler_names())}."
        )
    return spec


def split_legacy_name(name: str, scheduler: str = "Automatic") -> tuple[str, str]:
    """'DPM++ 2M Karras' -> ('DPM++ 2M', 'Karras'): old A1111 names carried the schedule in the sampler name."""
    stripped = name.strip()
    for schedule in ("Karras", "Exponential"):
        suffix = " " + schedule
        if stripped.endswith(suffix) and stripped[: -len(suffix)].lower() in _BY_NAME:
            return stripped[: -len(suffix)], schedule
    return stripped, scheduler


def resolve_schedule(spec: SamplerSpec, schedule: str) -> str:
    """The concrete schedule type ('Automatic' resolves per sampler); `SamplerError` for unknown names."""
    for known in SCHEDULE_TYPES:
        if known.lower() == schedule.strip().lower():
            return spec.automatic_schedule if known == "Automatic" else known
    raise SamplerError(f"Unknown schedule type '{schedule}'. Available: {', '.join(SCHEDULE_TYPES)}.")
