"""Value mapping between widgets and requests: the only home of UI sentinel strings and widget quirks."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webui.core.progress import ProgressSnapshot
from webui.core.requests import GenerationRequest

AUTOMATIC = "Automatic"


def _int(value: object, default: int) -> int:
    if value is None or value == "":
        return default
    return int(float(value))  # gradio Number/Slider values arrive as float


def txt2img_request(
    prompt: str, negative_prompt: str, sampler: str, schedule: str, steps: float, width: float, height: float,
    cfg_scale: float, seed: float | None, batch_count: float, batch_size: float, clip_skip: float,
    styles: Sequence[str] | None = None, extra_seed: bool = False, subseed: float | None = -1,
    subseed_strength: float | None = 0.0, seed_resize_from_w: float | None = 0, seed_resize_from_h: float | None = 0,
) -> GenerationRequest:
    """The request for the txt2img widgets' values.

    The "Extra" seed options count only while "Extra" is ticked, a variation seed only with a strength above 0,
    and "resize seed from" only with both sizes set, as in A1111 (hidden widgets keep their values, and a stale
    hidden value must not change the image).
    """
    strength = float(subseed_strength or 0.0) if extra_seed else 0.0
    resize_w, resize_h = _int(seed_resize_from_w, 0), _int(seed_resize_from_h, 0)
    if not (extra_seed and resize_w > 0 and resize_h > 0):
        resize_w = resize_h = 0
    return GenerationRequest(
        prompt=prompt or "",
        negative_prompt=negative_prompt or "",
        styles=tuple(styles or ()),
        sampler_name=sampler,
        scheduler=schedule or AUTOMATIC,
        steps=_int(steps, 20),
        cfg_scale=float(cfg_scale),
        width=_int(width, 512),
        height=_int(height, 512),
        seed=_int(seed, -1),
        n_iter=_int(batch_count, 1),
        batch_size=_int(batch_size, 1),
        clip_skip=_int(clip_skip, 1),
        subseed=_int(subseed, -1) if strength > 0 else -1,
        subseed_strength=strength,
        seed_resize_from_w=resize_w,
        seed_resize_from_h=resize_h,
    )


def progress_html(snapshot: ProgressSnapshot, now: float | None = None) -> str:
    """A1111-like progress text: percentage, step, batch and ETA."""
    if not snapshot.active:
        return ""
    percent = int(snapshot.fraction * 100)
    eta = snapshot.eta_seconds(now)
    eta_text = f" · ETA {eta:.0f}s" if eta is not None else ""
    batch = f" · Batch {snapshot.job_no + 1}/{snapshot.job_count}" if snapshot.job_count > 1 else ""
    queued = f" · {snapshot.queued} queued" if snapshot.queued else ""
    return (f"<div class='progress-text'><progress max='100' value='{percent}'></progress> {percent}% · "
            f"Step {snapshot.sampling_step}/{snapshot.sampling_steps}{batch}{eta_text}{queued}</div>")


def info_html(infotext: str) -> str:
    """The infotext under the gallery, escaped for HTML."""
    return f"<div class='infotext'>{html.escape(infotext).replace(chr(10), '<br>')}</div>" if infotext else ""


def error_markdown(message: str) -> str:
    return f"**Error:** {message}" if message else ""


def notes_markdown(notes: Sequence[str]) -> str:
    """Several short notes for a message area, one per line."""
    return "  \n".join(notes)


# ----------------------------------------------------------------------------------------------------------------
# Infotext -> txt2img widgets (the paste button and PNG Info's "Send to txt2img" share this)

# The generation fields (A1111 API names) the txt2img tab shows, in the order its paste outputs list them.
PASTE_FIELDS: tuple[str, ...] = (
    "prompt", "negative_prompt", "steps", "sampler_name", "scheduler", "cfg_scale", "seed", "width", "height",
    "clip_skip", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h",
)
_LABELS: Mapping[str, str] = {
    "steps": "Steps", "cfg_scale": "CFG scale", "width": "Width", "height": "Height", "clip_skip": "Clip skip",
    "subseed_strength": "Variation strength", "seed_resize_from_w": "Resize seed from width",
    "seed_resize_from_h": "Resize seed from height",
}
_INTEGER_FIELDS = frozenset({"steps", "seed", "width", "height", "clip_skip", "subseed", "seed_resize_from_w",
                             "seed_resize_from_h"})


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
               limits: Mapping[str, tuple[float, float]]) -> PastePlan:
    """Turn parsed infotext fields into widget values the widgets accept.

    Gradio refuses dropdown values outside the choices and slider values outside the range on the next Generate,
    so unknown samplers are left unchanged and numbers are clamped, each with a note, instead of filling a form
    that cannot be submitted.
    """
    plan = PastePlan(model=_text_or_none(fields.get("model")), model_hash=_text_or_none(fields.get("model_hash")))
    has_params = "steps" in fields or "clip_skip" in fields
    for name in PASTE_FIELDS:
        if name not in fields or fields[name] is None:
            continue
        value = fields[name]
        if name in ("sampler_name", "scheduler"):
            value = _choice(str(value), samplers if name == "sampler_name" else schedules)
            if value is None:
                what = "sampler" if name == "sampler_name" else "schedule type"
                plan.notes.append(f"Unknown {what} '{fields[name]}' in the infotext; kept the current one.")
                continue
        elif name in limits:
            value = _clamped(name, value, limits[name], plan.notes)
        plan.values[name] = value
    if has_params:
        # A1111 leaves variation keys out when they are off; an infotext without them means "off".
        plan.values.setdefault("subseed_strength", 0.0)
        plan.values.setdefault("seed_resize_from_w", 0)
        plan.values.setdefault("seed_resize_from_h", 0)
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


def checkpoint_note(model: str | None, model_hash: str | None) -> str:
    """The note shown when the infotext names a checkpoint we do not have."""
    named = model or ""
    if model_hash:
        named = f"{named} [{model_hash}]".strip()
    return f"The infotext's model **{named}** is not in the checkpoint list; kept the current checkpoint."


# ----------------------------------------------------------------------------------------------------------------
# PNG Info and Settings


def png_info_html(info: str, items: Mapping[str, str]) -> str:
    """A1111's PNG Info panel: the infotext first, then every other text chunk, escaped."""
    if not info and not items:
        return "<div class='pnginfo'><p>Nothing found in the image.</p></div>"
    parts = []
    for title, text in (("parameters", info), *items.items()):
        if text:
            parts.append(f"<div class='pnginfo'><p><b>{html.escape(str(title))}</b></p>"
                         f"<pre class='infotext'>{html.escape(str(text))}</pre></div>")
    return "".join(parts)


def settings_message(changed: Sequence[str]) -> str:
    """A1111's result line after "Apply settings"."""
    if not changed:
        return "Nothing changed."
    return f"{len(changed)} setting{'s' if len(changed) != 1 else ''} changed: {', '.join(changed)}."

