"""The generation widgets both tabs share -> A1111 field names, for `webui.core.request_builder.build_request`.

Why field names and not a request: the API body uses the same names, so the defaults and conversions live once
in the builder; what stays here is only what the widgets mean (the hidden "Extra" seed options, Gradio's floats).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def as_int(value: object, default: int) -> int:
    """A Gradio Number/Slider value (a float, or None/"" when cleared) as an int."""
    if value is None or value == "":
        return default
    return int(float(value))


@dataclass(frozen=True)
class SeedValues:
    """The seed row's values: the seed and the "Extra" variation options (`SeedWidgets.request_inputs` order)."""

    seed: float | None = -1
    extra: bool = False
    subseed: float | None = -1
    subseed_strength: float | None = 0.0
    resize_w: float | None = 0
    resize_h: float | None = 0

    def fields(self) -> dict[str, Any]:
        """The "Extra" seed options count only while "Extra" is ticked, a variation seed only with a strength
        above 0, and "resize seed from" only with both sizes set, as in A1111 (hidden widgets keep their values,
        and a stale hidden value must not change the image)."""
        strength = float(self.subseed_strength or 0.0) if self.extra else 0.0
        resize_w, resize_h = as_int(self.resize_w, 0), as_int(self.resize_h, 0)
        if not (self.extra and resize_w > 0 and resize_h > 0):
            resize_w = resize_h = 0
        return {"seed": as_int(self.seed, -1), "subseed": as_int(self.subseed, -1) if strength > 0 else -1,
                "subseed_strength": strength, "seed_resize_from_w": resize_w, "seed_resize_from_h": resize_h}


@dataclass(frozen=True)
class SamplingValues:
    """The prompt bar's and the sampling panel's values, in the tabs' Generate input order."""

    prompt: str = ""
    negative_prompt: str = ""
    sampler: str | None = None
    schedule: str | None = None
    steps: float | None = None
    width: float | None = None
    height: float | None = None
    cfg_scale: float | None = None
    batch_count: float | None = None
    batch_size: float | None = None
    clip_skip: float | None = None
    styles: Sequence[str] | None = None

    def fields(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt, "sampler_name": self.sampler,
                "scheduler": self.schedule, "steps": self.steps, "width": self.width, "height": self.height,
                "cfg_scale": self.cfg_scale, "n_iter": self.batch_count, "batch_size": self.batch_size,
                "clip_skip": self.clip_skip, "styles": tuple(self.styles or ())}


def common_fields(sampling: SamplingValues, seeds: SeedValues) -> dict[str, Any]:
    """The A1111 fields of the widgets txt2img and img2img share."""
    return {**sampling.fields(), **seeds.fields()}
