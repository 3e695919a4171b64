"""The X/Y/Z axis types: what each axis changes in a request, how its values are read and how its legend reads.

Why its own module: the table of axis types is what grows when a new kind of comparison is added, and the UI and
the API list it (labels, pickers) without needing the plot. Each type changes a request with
`dataclasses.replace`, so a cell is "the same request with one thing changed".
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from webui.core.errors import ValidationError
from webui.core.infotext import format_float
from webui.core.requests import GenerationRequest

NOTHING = "Nothing"

# Names of the enumerable lists a UI offers as pickers; the script service knows what each one holds.
CHOICES_SAMPLERS = "samplers"
CHOICES_SCHEDULES = "schedule types"
CHOICES_CHECKPOINTS = "checkpoints"
CHOICES_VAES = "vaes"
CHOICES_STYLES = "styles"
CHOICES_HIRES_UPSCALERS = "hires upscalers"
CHOICES_CONTROLNET_MODELS = "controlnet models"

Apply = Callable[[GenerationRequest, Any, Sequence[Any]], GenerationRequest]


def _field(name: str) -> Apply:
    """An axis that sets one request field to the cell's value."""
    return lambda request, value, _values: dataclasses.replace(request, **{name: value})


def _prompt_sr(request: GenerationRequest, value: str, values: Sequence[str]) -> GenerationRequest:
    """Prompt S/R: the first value is searched for and replaced by the cell's value, in both prompts (A1111).
    Plain text replacement, so `<lora:name:0.5>` -> `<lora:name:1>` or `<lora:ep-000002:1>` -> `...-000004:1>`
    compares LoRA weights and epochs."""
    return dataclasses.replace(request, prompt=request.prompt.replace(values[0], value),
                               negative_prompt=request.negative_prompt.replace(values[0], value))


def _prompt_order(request: GenerationRequest, order: tuple[str, ...], _values: Sequence[Any]) -> GenerationRequest:
    """Prompt order: the listed terms swap places in the prompt; the text between them stays where it was."""
    prompt = request.prompt
    found = sorted((prompt.find(term), term) for term in order)
    gaps: list[str] = []
    for _, term in found:
        index = prompt.find(term)
        gaps.append(prompt[:index])
        prompt = prompt[index + len(term):]
    rebuilt = "".join(gap + term for gap, term in zip(gaps, order, strict=True))
    return dataclasses.replace(request, prompt=rebuilt + prompt)


def _styles(request: GenerationRequest, value: str, _values: Sequence[Any]) -> GenerationRequest:
    """Styles: the cell's style names (comma-separated) are added to the request's styles."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    return dataclasses.replace(request, styles=(*request.styles, *names))


def _size(request: GenerationRequest, value: str, _values: Sequence[Any]) -> GenerationRequest:
    """Size: `WxH`, or one number for a square."""
    width, _, height = value.lower().partition("x")
    try:
        w = int(width.strip())
        h = int(height.strip()) if height.strip() else w
    except ValueError:
        raise ValidationError(f"Size '{value}' is not of the form 512x768.") from None
    return dataclasses.replace(request, width=w, height=h)


def _control(name: str) -> Apply:
    """A ControlNet axis (the extension's "[ControlNet] ..." axes): the value goes to every enabled unit, as the
    extension does for a single value."""

    def apply(request: GenerationRequest, value: Any, _values: Sequence[Any]) -> GenerationRequest:
        if not any(unit.enabled for unit in request.control_units):
            raise ValidationError("The [ControlNet] X/Y/Z axes change the enabled ControlNet units; enable one.")
        units = tuple(dataclasses.replace(unit, **{name: value}) if unit.enabled else unit
                      for unit in request.control_units)
        return dataclasses.replace(request, control_units=units)

    return apply


def _seed(name: str) -> Apply:
    return lambda request, value, _values: dataclasses.replace(request, **{name: int(value)})


@dataclass(frozen=True)
class AxisType:
    """One kind of axis. `kind` says how values are parsed: "int"/"float" (ranges allowed), "str" (CSV items) or
    "order" (the items' permutations). `choices` names the list a UI offers as pickers. `cost` is how expensive a
    change of value is between two cells (model loads), used to run cells grouped. `named` legends read
    "Steps: 20"; others show the bare value ("Euler a")."""

    label: str
    kind: str
    apply: Apply
    named: bool = True
    choices: str | None = None
    cost: float = 0.0
    note: str = ""
    seed: bool = False

    def legend(self, value: Any) -> str:
        if isinstance(value, tuple):
            text = ", ".join(value)
        elif isinstance(value, float):
            text = format_float(value)
        elif self.choices == CHOICES_CHECKPOINTS:
            text = checkpoint_label(str(value))
        else:
            text = str(value)
        return f"{self.label}: {text}" if self.named else text


_HIRES_NOTE = "Used only when Hires fix is on."

AXIS_TYPES: tuple[AxisType, ...] = (
    AxisType(NOTHING, "str", lambda request, _value, _values: request, named=False),
    AxisType("Seed", "int", _seed("seed"), seed=True),
    AxisType("Var. seed", "int", _seed("subseed"), seed=True),
    AxisType("Var. strength", "float", _field("subseed_strength")),
    AxisType("Steps", "int", _field("steps")),
    AxisType("Hires steps", "int", _field("hr_second_pass_steps"), note=_HIRES_NOTE),
    AxisType("CFG Scale", "float", _field("cfg_scale")),
    AxisType("Prompt S/R", "str", _prompt_sr, named=False),
    AxisType("Prompt order", "order", _prompt_order, named=False),
    AxisType("Sampler", "str", _field("sampler_name"), named=False, choices=CHOICES_SAMPLERS),
    AxisType("Schedule type", "str", _field("scheduler"), choices=CHOICES_SCHEDULES),
    AxisType("Checkpoint name", "str", _field("checkpoint"), named=False, choices=CHOICES_CHECKPOINTS, cost=1.0),
    AxisType("VAE", "str", _field("vae"), named=False, choices=CHOICES_VAES, cost=0.7),
    AxisType("Clip skip", "int", _field("clip_skip")),
    AxisType("Denoising", "float", _field("denoising_strength"),
             note="Used by img2img, and by txt2img only when Hires fix is on."),
    AxisType("Hires upscaler", "str", _field("hr_upscaler"), choices=CHOICES_HIRES_UPSCALERS, note=_HIRES_NOTE),
    AxisType("Styles", "str", _styles, named=False, choices=CHOICES_STYLES),
    AxisType("Size", "str", _size),
    AxisType("[ControlNet] Weight", "float", _control("weight")),
    AxisType("[ControlNet] Guidance End", "float", _control("guidance_end")),
    AxisType("[ControlNet] Model", "str", _control("model"), choices=CHOICES_CONTROLNET_MODELS, cost=0.3),
    # Appended (A1111 clients address axis types by index): flow-matching families only.
    AxisType("Distilled CFG Scale", "float", _field("distilled_cfg_scale"), note="Flux dev only."),
    AxisType("Shift", "float", _field("shift"), note="Flow-matching models (AuraFlow, Flux); 0 = the model's own."),
)
_BY_LABEL = {axis.label.lower(): axis for axis in AXIS_TYPES}


def axis_type(label: str | None) -> AxisType:
    """An axis type by its label (case-insensitive; empty means Nothing); `ValidationError` if unknown."""
    found = _BY_LABEL.get((label or NOTHING).strip().lower())
    if found is None:
        raise ValidationError(f"Unknown X/Y/Z axis type '{label}'. Known: {', '.join(axis_type_labels())}.")
    return found


def axis_type_labels() -> list[str]:
    return [axis.label for axis in AXIS_TYPES]


def checkpoint_label(title: str) -> str:
    """A checkpoint title as a legend: no folder, no extension, no ` [hash]`."""
    name = re.sub(r"\s*\[[0-9a-fA-F]{8,}\]$", "", title).replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"\.(safetensors|ckpt|pt|pth|bin)$", "", name, flags=re.IGNORECASE)
