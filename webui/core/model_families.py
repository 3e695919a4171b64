"""What each model family offers the user, as data: its samplers, its defaults, its extra generation fields.

Why in core: the UI (sampler list, which sliders show), the API (a clear 422 for a sampler the loaded family
cannot use), X/Y/Z and the engine must agree, and none of that needs torch. The engine's half of a family (what it
loads, which pipeline, how prompts are encoded) is `webui/engine/families/`; adding a family (SD3.5) is one row
here and one there.

Flow-matching families (AuraFlow, Flux) sample with the flow-matching schedulers under the A1111 names users
know: Euler, Euler a (stochastic flow Euler), Heun, DPM++ 2M (DPM-Solver++ on flow sigmas). Their schedule has a
`shift` (how much of the run is spent at high noise); 0 in a request means the family's own default.
"""
from __future__ import annotations

from dataclasses import dataclass

from webui.core.errors import ValidationError

SD1, SD2, SDXL, AURAFLOW, FLUX = "sd1", "sd2", "sdxl", "auraflow", "flux"
FLUX_SCHNELL = "schnell"  # variant of FLUX: no guidance embedding, few steps
FLOW_SAMPLERS: tuple[str, ...] = ("Euler", "Euler a", "Heun", "DPM++ 2M")
FLOW_SCHEDULES: tuple[str, ...] = ("Automatic", "Uniform", "Karras", "Exponential")


@dataclass(frozen=True)
class FamilyDefaults:
    """What a new generation on this family starts from (A1111's UI values for SD; the model cards' for the
    rest). `distilled_cfg` is None for families without distilled guidance."""

    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: str
    distilled_cfg: float | None = None
    shift: float = 0.0


@dataclass(frozen=True)
class FamilyInfo:
    """One family's user-facing facts. `samplers` None: every A1111 sampler; else only those names.
    `flow`: a flow-matching transformer (shift applies, no clip skip, no textual inversion)."""

    name: str
    label: str
    samplers: tuple[str, ...] | None
    defaults: FamilyDefaults
    flow: bool = False
    schedules: tuple[str, ...] | None = None
    inpaint: bool = True


_SD_DEFAULTS = FamilyDefaults(512, 512, 20, 7.0, "Euler a")
FAMILIES: dict[str, FamilyInfo] = {
    SD1: FamilyInfo(SD1, "Stable Diffusion 1.x", None, _SD_DEFAULTS),
    SD2: FamilyInfo(SD2, "Stable Diffusion 2.x", None, _SD_DEFAULTS),
    SDXL: FamilyInfo(SDXL, "Stable Diffusion XL", None, FamilyDefaults(1024, 1024, 20, 7.0, "Euler a")),
    AURAFLOW: FamilyInfo(AURAFLOW, "AuraFlow", FLOW_SAMPLERS, FamilyDefaults(1024, 1024, 50, 3.5, "Euler"),
                         flow=True, schedules=FLOW_SCHEDULES),
    FLUX: FamilyInfo(FLUX, "Flux.1", FLOW_SAMPLERS,
                     FamilyDefaults(1024, 1024, 20, 1.0, "Euler", distilled_cfg=3.5), flow=True,
                     schedules=FLOW_SCHEDULES),
}
# Variants whose defaults differ from their family's (Flux schnell: 4 steps, no guidance at all).
VARIANT_DEFAULTS: dict[tuple[str, str], FamilyDefaults] = {
    (FLUX, FLUX_SCHNELL): FamilyDefaults(1024, 1024, 4, 1.0, "Euler"),
    # SD 2.x 768-v (v-prediction) files were trained at 768; the shipped demo model (an SD1 file) at 64 px.
    (SD2, "v"): FamilyDefaults(768, 768, 20, 7.0, "Euler a"),
    (SD1, "demo"): FamilyDefaults(64, 64, 20, 7.0, "Euler a"),
}


def family_info(family: str) -> FamilyInfo:
    """The family's row; unknown names (a future family the engine loads) behave like SD (every sampler)."""
    return FAMILIES.get(family, FamilyInfo(family, family, None, _SD_DEFAULTS))


def family_defaults(family: str, variant: str = "") -> FamilyDefaults:
    return VARIANT_DEFAULTS.get((family, variant), family_info(family).defaults)


def samplers_for(family: str, all_samplers: list[str]) -> list[str]:
    """The sampler names to offer for `family`, in the A1111 list's order."""
    allowed = family_info(family).samplers
    return list(all_samplers) if allowed is None else [s for s in all_samplers if s in allowed]


def check_sampler(family: str, sampler: str, schedule: str = "Automatic") -> None:
    """`ValidationError` (a 422 through the API) when the family cannot sample with `sampler` / `schedule`."""
    info = family_info(family)
    if info.samplers is not None and sampler not in info.samplers:
        raise ValidationError(f"Sampler '{sampler}' cannot be used with {info.label} models. "
                              f"Available for {info.label}: {', '.join(info.samplers)}.")
    if info.schedules is not None and schedule not in info.schedules:
        raise ValidationError(f"Schedule type '{schedule}' cannot be used with {info.label} models. "
                              f"Available: {', '.join(info.schedules)}.")
