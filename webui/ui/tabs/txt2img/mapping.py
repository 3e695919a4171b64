"""The txt2img tab's widget values -> a `GenerationRequest`, through the request builder the API uses too."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webui.core.request_builder import build_request
from webui.core.requests import GenerationRequest
from webui.ui.request_fields import SamplingValues, SeedValues, common_fields
from webui.ui.sentinels import LATENT

# The hires denoising slider's starting value (A1111's); the API's default for a missing value is the request's.
HIRES_DEFAULT_DENOISING = 0.7


@dataclass(frozen=True)
class HiresValues:
    """The "Hires. fix" widgets' values, in `HiresWidgets.request_inputs` order."""

    enabled: bool = False
    upscaler: str | None = LATENT
    steps: float | None = 0
    denoising_strength: float | None = HIRES_DEFAULT_DENOISING
    scale: float | None = 2.0
    resize_x: float | None = 0
    resize_y: float | None = 0

    def fields(self) -> dict[str, Any]:
        """Unticked, the hidden widgets change nothing (as in A1111): no hires field is given at all."""
        if not self.enabled:
            return {}
        denoising = HIRES_DEFAULT_DENOISING if self.denoising_strength is None else self.denoising_strength
        return {"enable_hr": True, "hr_upscaler": self.upscaler, "hr_second_pass_steps": self.steps,
                "denoising_strength": denoising, "hr_scale": self.scale, "hr_resize_x": self.resize_x,
                "hr_resize_y": self.resize_y}


def txt2img_fields(sampling: SamplingValues, seeds: SeedValues, hires: HiresValues = HiresValues()) -> dict[str, Any]:
    """The tab's A1111 fields (the same names an API body uses)."""
    return {**common_fields(sampling, seeds), **hires.fields()}


def txt2img_request(sampling: SamplingValues, seeds: SeedValues, hires: HiresValues = HiresValues()
                    ) -> GenerationRequest:
    return build_request(txt2img_fields(sampling, seeds, hires))
