"""ControlNet units: the frozen per-unit request, the extension's name tables and its infotext entry.

Why in core: the UI's unit panels, the API's `alwayson_scripts.controlnet.args`, PNG Info / paste and the
engine must agree on one unit shape and one spelling of every mode. Field names are the ControlNet extension's
API names (`enabled`, `module`, `model`, `weight`, ...), so an API unit maps onto this dataclass field by field.
The infotext entry is the extension's: `ControlNet 0: "Module: canny, Model: name [hash], Weight: 1.0, ..."`.
Pure Python: images are opaque references (PIL images in practice), carried like img2img init images.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webui.core.control_modules import preprocessor_spec
from webui.core.errors import ValidationError

# The extension's enums, in its index order (clients send the name or the index).
CONTROL_MODES: tuple[str, ...] = ("Balanced", "My prompt is more important", "ControlNet is more important")
CONTROL_RESIZE_MODES: tuple[str, ...] = ("Just Resize", "Crop and Resize", "Resize and Fill")
# Older clients and the extension's own enum member names.
_RESIZE_ALIASES: Mapping[str, str] = {"resize": "Just Resize", "inner_fit": "Crop and Resize",
                                      "outer_fit": "Resize and Fill", "envelope": "Resize and Fill",
                                      "scale to fit (inner fit)": "Crop and Resize",
                                      "envelope (outer fit)": "Resize and Fill"}
_MODE_ALIASES: Mapping[str, str] = {"balanced": "Balanced", "prompt": "My prompt is more important",
                                    "control": "ControlNet is more important"}
NO_MODULE = "none"
NO_MODEL = "None"
DEFAULT_PROCESSOR_RES = 512
INFOTEXT_KEY_PREFIX = "ControlNet "
MAX_WEIGHT = 2.0


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet unit. `image`/`mask` are images (typed loosely, core does not import PIL); `image=None`
    means "use the img2img input" (the extension's behaviour). Threshold -1 means the preprocessor's default."""

    enabled: bool = True
    module: str = NO_MODULE
    model: str = NO_MODEL
    weight: float = 1.0
    image: Any = None
    mask: Any = None
    resize_mode: str = "Crop and Resize"
    processor_res: int = DEFAULT_PROCESSOR_RES
    threshold_a: float = -1.0
    threshold_b: float = -1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: str = "Balanced"

    @property
    def control_mode_index(self) -> int:
        return CONTROL_MODES.index(self.control_mode)

    @property
    def resize_mode_index(self) -> int:
        return CONTROL_RESIZE_MODES.index(self.resize_mode)

    def validate(self, index: int = 0) -> list[str]:
        """Readable problems of this unit (empty when fine); `index` names the unit in the messages."""
        what = f"ControlNet unit {index}"
        problems = []
        if not _finite(self.weight) or not 0.0 <= self.weight <= MAX_WEIGHT:
            problems.append(f"{what}: weight must be between 0 and {MAX_WEIGHT:g} (got {self.weight}).")
        start, end = self.guidance_start, self.guidance_end
        if not (_finite(start) and _finite(end) and 0.0 <= start <= end <= 1.0):
            problems.append(f"{what}: guidance start/end must satisfy 0 <= start <= end <= 1 "
                            f"(got {start} and {end}).")
        if not 64 <= self.processor_res <= 4096 and self.processor_res != -1:
            problems.append(f"{what}: processor resolution must be between 64 and 4096 (got {self.processor_res}).")
        if self.control_mode not in CONTROL_MODES:
            problems.append(f"{what}: unknown control mode {self.control_mode!r}; one of {', '.join(CONTROL_MODES)}.")
        if self.resize_mode not in CONTROL_RESIZE_MODES:
            problems.append(f"{what}: unknown resize mode {self.resize_mode!r}; "
                            f"one of {', '.join(CONTROL_RESIZE_MODES)}.")
        if self.enabled and self.model in ("", NO_MODEL) and not _model_free(self.module):
            problems.append(f"{what} is enabled but has no model.")
        return problems


def _model_free(module: str) -> bool:
    try:
        return preprocessor_spec(module).model_free
    except ValidationError:
        return False


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def control_mode_name(value: object) -> str:
    """A control mode sent as a name (any case, or the enum's member name) or an index -> its name."""
    return _enum_name(value, CONTROL_MODES, _MODE_ALIASES, "control mode")


def resize_mode_name(value: object) -> str:
    """A resize mode sent as a name (any case, or an old alias) or an index 0-2 -> its name."""
    return _enum_name(value, CONTROL_RESIZE_MODES, _RESIZE_ALIASES, "resize mode")


def _enum_name(value: object, names: tuple[str, ...], aliases: Mapping[str, str], what: str) -> str:
    if isinstance(value, bool):
        raise ValidationError(f"ControlNet {what} must be a name or an index (got {value!r}).")
    if isinstance(value, int | float) and float(value).is_integer() and 0 <= int(value) < len(names):
        return names[int(value)]
    text = str(value).strip()
    if text.isdigit() and int(text) < len(names):
        return names[int(text)]
    by_lower = {name.lower(): name for name in names} | dict(aliases)
    name = by_lower.get(text.lower())
    if name is None:
        raise ValidationError(f"Unknown ControlNet {what} {value!r}; one of: {', '.join(names)} "
                              f"(or 0-{len(names) - 1}).")
    return name


def validate_units(units: Iterable[ControlUnit]) -> list[str]:
    """Problems of the enabled units, numbered as the user sees them (a disabled unit is never used)."""
    return [problem for index, unit in enumerate(units) if unit.enabled for problem in unit.validate(index)]


# ----------------------------------------------------------------------------------------------------------------
# Infotext: `ControlNet N: "Module: canny, Model: name [hash], Weight: 1.0, ..."`

# (infotext label, field name) in the extension's order; the image and mask are never written.
_INFOTEXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("Module", "module"), ("Model", "model"), ("Weight", "weight"), ("Resize Mode", "resize_mode"),
    ("Processor Res", "processor_res"), ("Threshold A", "threshold_a"), ("Threshold B", "threshold_b"),
    ("Guidance Start", "guidance_start"), ("Guidance End", "guidance_end"), ("Pixel Perfect", "pixel_perfect"),
    ("Control Mode", "control_mode"),
)
_LABEL_TO_FIELD = {label.lower(): name for label, name in _INFOTEXT_FIELDS}
# "Key: value" pairs inside the entry; a value runs to the next ", Key:" (model titles may hold commas).
_ENTRY_RE = re.compile(r"\s*([A-Za-z][\w ]*?):\s*(.*?)\s*(?=,\s*[A-Za-z][\w ]*?:|$)")
_UNIT_KEY_RE = re.compile(r"^ControlNet (\d+)$")


def unit_infotext(unit: ControlUnit, model_title: str | None = None) -> str:
    """The entry's value for one unit; `model_title` ("name [hash]") replaces what the user typed."""
    values = {name: getattr(unit, name) for _, name in _INFOTEXT_FIELDS}
    if model_title:
        values["model"] = model_title
    return ", ".join(f"{label}: {_format(values[name])}" for label, name in _INFOTEXT_FIELDS)


def _format(value: object) -> str:
    return str(float(value)) if isinstance(value, float) else str(value)


def infotext_entries(units: Iterable[ControlUnit],
                     model_titles: Iterable[str | None] | None = None) -> list[tuple[str, str]]:
    """`("ControlNet N", entry)` for each enabled unit, numbered over the enabled units (as the extension)."""
    units = list(units)
    titles = list(model_titles) if model_titles is not None else [None] * len(units)
    enabled = [(unit, title) for unit, title in zip(units, titles, strict=True) if unit.enabled]
    return [(f"{INFOTEXT_KEY_PREFIX}{index}", unit_infotext(unit, title))
            for index, (unit, title) in enumerate(enabled)]


def parse_unit_infotext(text: str) -> ControlUnit:
    """An entry's value back to a unit (enabled, no image); unknown labels are ignored, bad values skipped."""
    values: dict[str, Any] = {}
    for label, raw in _ENTRY_RE.findall(text):
        name = _LABEL_TO_FIELD.get(label.strip().lower())
        if name is not None:
            converted = _convert_field(name, raw.strip())
            if converted is not None:
                values[name] = converted
    return ControlUnit(enabled=True, **values)


def _convert_field(name: str, raw: str) -> Any:
    """A field's value from its text, typed like the dataclass default; None when malformed."""
    try:
        if name == "control_mode":
            return control_mode_name(raw)
        if name == "resize_mode":
            return resize_mode_name(raw)
        default = _DEFAULTS[name]
        if isinstance(default, bool):
            return raw.lower() == "true"
        if isinstance(default, int):
            return int(float(raw))
        if isinstance(default, float):
            return float(raw)
        return raw
    except (ValueError, ValidationError):
        return None


_DEFAULTS: Mapping[str, Any] = {item.name: item.default for item in dataclasses.fields(ControlUnit)}


def units_from_params(params: Mapping[str, str]) -> tuple[ControlUnit, ...]:
    """The units an infotext's parameters record (`ControlNet 0`, `ControlNet 1`, ...), in index order."""
    found = []
    for key, value in params.items():
        match = _UNIT_KEY_RE.match(key.strip())
        if match is not None:
            found.append((int(match.group(1)), parse_unit_infotext(value)))
    return tuple(unit for _, unit in sorted(found, key=lambda pair: pair[0]))
