"""ControlNet unit widgets' values <-> `ControlUnit`s, and an infotext's units -> widget values.

Why apart from the layout: this is what the Generate handlers and the paste button rely on (order of values,
which sliders count for which preprocessor, the img2img input), so it is kept free of Gradio and tested as is.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webui.core.control import (
    CONTROL_MODES,
    CONTROL_RESIZE_MODES,
    DEFAULT_PROCESSOR_RES,
    NO_MODEL,
    ControlUnit,
    units_from_params,
)
from webui.core.control_modules import preprocessor_spec
from webui.core.errors import ValidationError
from webui.core.infotext import parse_infotext

# One unit's widget values, in this order (`UnitWidgets.inputs()` follows it).
UNIT_FIELDS: tuple[str, ...] = (
    "enabled", "image", "use_input", "module", "model", "weight", "guidance_start", "guidance_end",
    "control_mode", "resize_mode", "pixel_perfect", "processor_res", "threshold_a", "threshold_b",
)
# The fields an infotext restores (the image is never in an infotext; "use_input" is a UI choice).
PASTED_FIELDS: tuple[str, ...] = tuple(name for name in UNIT_FIELDS if name not in ("image", "use_input"))


@dataclass(frozen=True)
class UnitValues:
    """One unit's widget values as Gradio hands them over (floats, None when a number box was cleared)."""

    enabled: bool = False
    image: Any = None
    use_input: bool = False
    module: str | None = "none"
    model: str | None = NO_MODEL
    weight: float | None = 1.0
    guidance_start: float | None = 0.0
    guidance_end: float | None = 1.0
    control_mode: str | None = CONTROL_MODES[0]
    resize_mode: str | None = CONTROL_RESIZE_MODES[1]
    pixel_perfect: bool = False
    processor_res: float | None = DEFAULT_PROCESSOR_RES
    threshold_a: float | None = -1
    threshold_b: float | None = -1

    def unit(self, index: int, *, img2img: bool) -> ControlUnit:
        """The request's unit. Sliders the preprocessor does not have send -1 ("its default"), as the extension
        does; in img2img "Use the img2img input" (or no upload) leaves `image` None, which means the init image."""
        spec = preprocessor_spec(self.module)
        image = None if (img2img and self.use_input) else self.image
        if self.enabled and image is None and not img2img:
            raise ValidationError(f"ControlNet unit {index} is enabled but has no control image: upload one.")
        return ControlUnit(
            enabled=bool(self.enabled), module=spec.ui_name, model=self.model or NO_MODEL,
            weight=_number(self.weight, 1.0), image=image,
            resize_mode=self.resize_mode or CONTROL_RESIZE_MODES[1],
            processor_res=int(_number(self.processor_res, DEFAULT_PROCESSOR_RES)) if spec.resolution else -1,
            threshold_a=_number(self.threshold_a, -1.0) if spec.threshold_a else -1.0,
            threshold_b=_number(self.threshold_b, -1.0) if spec.threshold_b else -1.0,
            guidance_start=_number(self.guidance_start, 0.0), guidance_end=_number(self.guidance_end, 1.0),
            pixel_perfect=bool(self.pixel_perfect), control_mode=self.control_mode or CONTROL_MODES[0])


def _number(value: float | None, default: float) -> float:
    return default if value is None or value == "" else float(value)


def units_from_values(values: Sequence[Any], *, img2img: bool) -> tuple[ControlUnit, ...]:
    """Every unit's values, flat in `UNIT_FIELDS` order unit after unit -> the units that are enabled.

    Missing trailing values (older API callers) mean "no more units". Disabled units are left out: a disabled
    unit changes nothing, and the request then stays exactly what it was without ControlNet.
    """
    size = len(UNIT_FIELDS)
    units = []
    for index in range(len(values) // size):
        unit_values = UnitValues(*values[index * size:(index + 1) * size])
        if unit_values.enabled:
            units.append(unit_values.unit(index, img2img=img2img))
    return tuple(units)


def pasted_units(text: str) -> tuple[ControlUnit, ...]:
    """The units an infotext records (`ControlNet 0: "Module: canny, ..."`), in order."""
    return units_from_params(parse_infotext(text).params) if (text or "").strip() else ()


def widget_values(unit: ControlUnit, model_choices: Sequence[str]) -> dict[str, Any]:
    """A pasted unit -> values for its widgets (`PASTED_FIELDS`). The module becomes the dropdown's alias; a model
    not in `model_choices` is matched by name without the hash, else left as None (Gradio refuses unknown values)."""
    spec = preprocessor_spec(unit.module)
    return {"enabled": True, "module": spec.ui_name, "model": match_model(unit.model, model_choices),
            "weight": unit.weight, "guidance_start": unit.guidance_start, "guidance_end": unit.guidance_end,
            "control_mode": unit.control_mode, "resize_mode": unit.resize_mode, "pixel_perfect": unit.pixel_perfect,
            "processor_res": unit.processor_res if unit.processor_res > 0 else None,
            "threshold_a": unit.threshold_a if unit.threshold_a >= 0 else None,
            "threshold_b": unit.threshold_b if unit.threshold_b >= 0 else None}


def match_model(title: str, choices: Sequence[str]) -> str | None:
    """`title` if listed; else the listed model with the same name (hash differs or missing); else None."""
    if title in choices:
        return title
    name = title.split(" [")[0].strip().lower()
    return next((choice for choice in choices if choice.split(" [")[0].strip().lower() == name), None)
