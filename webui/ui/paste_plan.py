"""Infotext -> generation widget values: which fields the paste button and PNG Info's "Send to" fill, and how
values the widgets would refuse are adjusted (with a note) instead of producing a form that cannot be submitted.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The generation fields (A1111 API names) both generation tabs show, in the order their paste outputs list them.
COMMON_PASTE_FIELDS: tuple[str, ...] = (
    "prompt", "negative_prompt", "steps", "sampler_name", "scheduler", "cfg_scale", "seed", "width", "height",
    "clip_skip", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h",
)
HIRES_PASTE_FIELDS: tuple[str, ...] = (
    "enable_hr", "hr_upscaler", "hr_second_pass_steps", "denoising_strength", "hr_scale", "hr_resize_x",
    "hr_resize_y",
)
# txt2img's paste targets, and img2img's (its own denoising strength and mask blur instead of the hires fields).
PASTE_FIELDS: tuple[str, ...] = COMMON_PASTE_FIELDS + HIRES_PASTE_FIELDS
IMG2IMG_PASTE_FIELDS: tuple[str, ...] = (*COMMON_PASTE_FIELDS, "denoising_strength", "mask_blur")
_ALL_PASTE_FIELDS: tuple[str, ...] = (*PASTE_FIELDS, "mask_blur")
_LABELS: Mapping[str, str] = {
    "steps": "Steps", "cfg_scale": "CFG scale", "width": "Width", "height": "Height", "clip_skip": "Clip skip",
    "subseed_strength": "Variation strength", "seed_resize_from_w": "Resize seed from width",
    "seed_resize_from_h": "Resize seed from height", "hr_upscaler": "Hires upscaler", "hr_scale": "Hires upscale",
    "hr_second_pass_steps": "Hires steps", "hr_resize_x": "Hires resize width", "hr_resize_y": "Hires resize height",
    "denoising_strength": "Denoising strength", "mask_blur": "Mask blur",
}
_INTEGER_FIELDS = frozenset({"steps", "seed", "width", "height", "clip_skip", "subseed", "seed_resize_from_w",
                             "seed_resize_from_h", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "mask_blur"})


@dataclass
class PastePlan:
    """What pasting an infotext does to the txt2img widgets.

    `values` holds only the fields to change (others keep what the user has); `show_extra` ticks the "Extra" seed
    options when the infotext uses them; `model`/`model_hash` name the checkpoint to look for; `notes` explain
    anything that could not be applied as written.
    """

    values: dict[str, Any] = field(default_factory=dict)
    show_extra: bool = False
    model: str | None = None
    model_hash: str | None = None
    notes: list[str] = field(default_factory=list)


def paste_plan(fields: Mapping[str, Any], *, samplers: Sequence[str], schedules: Sequence[str],
               limits: Mapping[str, tuple[float, float]], choices: Mapping[str, Sequence[str]] | None = None
               ) -> PastePlan:
    """Turn parsed infotext fields into widget values the widgets accept.

    Gradio refuses dropdown values outside the choices and slider values outside the range on the next Generate,
    so unknown samplers (and upscalers, per `choices`) are left unchanged and numbers are clamped, each with a
    note, instead of filling a form that cannot be submitted.
    """
    plan = PastePlan(model=_text_or_none(fields.get("model")), model_hash=_text_or_none(fields.get("model_hash")))
    has_params = "steps" in fields or "clip_skip" in fields
    options = {"sampler_name": samplers, "scheduler": schedules, **(choices or {})}
    for name in _ALL_PASTE_FIELDS:
        if name not in fields or fields[name] is None:
            continue
        value = fields[name]
        if name in options:
            value = _choice(str(value), options[name])
            if value is None:
                what = {"sampler_name": "sampler", "scheduler": "schedule type"}.get(name, _LABELS.get(name, name))
                plan.notes.append(f"Unknown {what.lower()} '{fields[name]}' in the infotext; kept the current one.")
                continue
        elif name in limits:
            value = _clamped(name, value, limits[name], plan.notes)
        plan.values[name] = value
    if has_params:
        # A1111 leaves variation keys out when they are off; an infotext without them means "off".
        plan.values.setdefault("subseed_strength", 0.0)
        plan.values.setdefault("seed_resize_from_w", 0)
        plan.values.setdefault("seed_resize_from_h", 0)
        # A1111 ticks "Hires. fix" exactly when the infotext has Hires keys; a missing size or step count is "off".
        plan.values.setdefault("enable_hr", False)
        if plan.values["enable_hr"]:
            if "hr_resize_x" not in plan.values:
                plan.values.update(hr_resize_x=0, hr_resize_y=0)
            plan.values.setdefault("hr_second_pass_steps", 0)
    plan.show_extra = bool(plan.values.get("subseed_strength")) or bool(plan.values.get("seed_resize_from_w"))
    return plan


def _text_or_none(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _choice(value: str, choices: Sequence[str]) -> str | None:
    """The choice matching `value` case-insensitively (infotexts from other tools vary in case)."""
    wanted = value.strip().lower()
    return next((choice for choice in choices if choice.lower() == wanted), None)


def _clamped(name: str, value: Any, bounds: tuple[float, float], notes: list[str]) -> float | int:
    low, high = bounds
    number = float(value)
    clamped = min(max(number, low), high)
    if clamped != number:
        notes.append(f"{_LABELS.get(name, name)} {value} is outside {low:g}..{high:g}; set to {clamped:g}.")
    return int(clamped) if name in _INTEGER_FIELDS else clamped
