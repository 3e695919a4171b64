"""Value mapping between widgets and requests: the only home of UI sentinel strings and widget quirks."""
from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops

from webui.core.errors import ValidationError
from webui.core.progress import ProgressSnapshot
from webui.core.requests import INPAINT_FILL, RESIZE_MODES, GenerationRequest, Img2ImgInputs
from webui.services import ExtrasRequest

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


# ----------------------------------------------------------------------------------------------------------------
# Hires fix (txt2img)

HIRES_DEFAULT_DENOISING = 0.7


def with_hires(request: GenerationRequest, enabled: bool, upscaler: str | None, steps: float | None,
               denoising_strength: float | None, scale: float | None, resize_x: float | None,
               resize_y: float | None) -> GenerationRequest:
    """`request` with the "Hires. fix" widgets' values; unticked, the hidden widgets change nothing (as in A1111)."""
    if not enabled:
        return request
    return dataclasses.replace(
        request, enable_hr=True, hr_upscaler=upscaler or "Latent", hr_second_pass_steps=_int(steps, 0),
        denoising_strength=float(HIRES_DEFAULT_DENOISING if denoising_strength is None else denoising_strength),
        hr_scale=float(scale or 2.0), hr_resize_x=_int(resize_x, 0), hr_resize_y=_int(resize_y, 0))


# ----------------------------------------------------------------------------------------------------------------
# img2img / inpaint

# The sub-tabs of the img2img tab; the selected one decides where the image and the mask come from.
IMG2IMG_MODES: tuple[str, ...] = ("img2img", "Inpaint", "Inpaint upload")
RESIZE_MODE_CHOICES: tuple[str, ...] = RESIZE_MODES
MASK_MODES: tuple[str, ...] = ("Inpaint masked", "Inpaint not masked")
MASKED_CONTENT_CHOICES: tuple[str, ...] = INPAINT_FILL
INPAINT_AREAS: tuple[str, ...] = ("Whole picture", "Only masked")


@dataclass(frozen=True)
class InpaintWidgets:
    """The values of the img2img tab's image-side widgets (one field per widget)."""

    mode: str = IMG2IMG_MODES[0]
    init_image: Any = None
    editor: Mapping[str, Any] | None = None
    inpaint_image: Any = None
    inpaint_mask: Any = None
    resize_mode: str = RESIZE_MODES[0]
    mask_blur: float = 4
    mask_mode: str = MASK_MODES[0]
    masked_content: str = INPAINT_FILL[1]
    inpaint_area: str = INPAINT_AREAS[0]
    padding: float = 32


def img2img_request(base: GenerationRequest, denoising_strength: float, widgets: InpaintWidgets) -> GenerationRequest:
    """The img2img/inpaint request: `base` (the txt2img-like fields) plus the image side of the selected sub-tab.

    Raises `ValidationError` with what to do when the selected sub-tab lacks its image or mask, so the user is told
    which box to fill instead of getting a generic failure.
    """
    mode = widgets.mode if widgets.mode in IMG2IMG_MODES else IMG2IMG_MODES[0]
    mask = None
    if mode == "img2img":
        image = widgets.init_image
        if image is None:
            raise ValidationError("img2img needs an input image: drop one into the img2img box.")
    elif mode == "Inpaint":
        image, mask = editor_image_and_mask(widgets.editor)
        if image is None:
            raise ValidationError("Inpaint needs an image: drop one into the Inpaint box, then paint the mask on it.")
        if mask is None:
            raise ValidationError("Inpaint needs a mask: paint over the area to change with the brush.")
    else:
        image, mask = widgets.inpaint_image, widgets.inpaint_mask
        if image is None or mask is None:
            raise ValidationError("Inpaint upload needs both an image and a mask (white = the area to change).")
    inputs = Img2ImgInputs(
        init_images=(image.convert("RGB"),),
        mask=mask,
        resize_mode=_index(widgets.resize_mode, RESIZE_MODES),
        mask_blur=_int(widgets.mask_blur, 4),
        inpainting_fill=_index(widgets.masked_content, INPAINT_FILL, default=1),
        inpaint_full_res=widgets.inpaint_area == INPAINT_AREAS[1],
        inpaint_full_res_padding=_int(widgets.padding, 32),
        inpainting_mask_invert=widgets.mask_mode == MASK_MODES[1],
    )
    return dataclasses.replace(base, denoising_strength=float(denoising_strength), img2img=inputs)


def _index(value: str | None, choices: Sequence[str], default: int = 0) -> int:
    return choices.index(value) if value in choices else default


def editor_image_and_mask(value: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """`gr.ImageEditor`'s value -> (image, mask). The background is the image; everything painted on the layers
    (any colour, any layer) is the mask, white = repaint. None for what is missing (no strokes: no mask)."""
    if not value:
        return None, None
    background = value.get("background") or value.get("composite")
    if background is None:
        return None, None
    mask = Image.new("L", background.size, 0)
    for layer in value.get("layers") or ():
        if layer is None:
            continue
        alpha = layer.convert("RGBA").getchannel("A")
        if alpha.size != background.size:
            alpha = alpha.resize(background.size, Image.Resampling.NEAREST)
        mask = ImageChops.lighter(mask, alpha.point(lambda v: 255 if v > 0 else 0))
    return background.convert("RGB"), mask if mask.getbbox() is not None else None


# ----------------------------------------------------------------------------------------------------------------
# Extras

EXTRAS_SOURCES: tuple[str, ...] = ("Single Image", "Batch Process", "Batch from Directory")
EXTRAS_RESIZE_MODES: tuple[str, ...] = ("Scale by", "Scale to")
NO_UPSCALER = "None"


def extras_request(resize_mode: str, scale_by: float, width: float, height: float, crop_to_fit: bool,
                   upscaler_1: str | None, upscaler_2: str | None, upscaler_2_visibility: float) -> ExtrasRequest:
    """The Extras widgets' values -> an `ExtrasRequest` ("Scale to" uses width/height, "Scale by" the factor)."""
    resize_to = (_int(width, 512), _int(height, 512)) if resize_mode == EXTRAS_RESIZE_MODES[1] else None
    if resize_to is not None and min(resize_to) < 1:
        raise ValidationError("Scale to needs a width and a height of at least 1.")
    if resize_to is None and not float(scale_by or 0) > 0:
        raise ValidationError("Scale by must be above 0.")
    return ExtrasRequest(scale_by=float(scale_by), resize_to=resize_to, crop_to_fit=bool(crop_to_fit),
                         upscaler_1=upscaler_1 or NO_UPSCALER, upscaler_2=upscaler_2 or NO_UPSCALER,
                         upscaler_2_visibility=float(upscaler_2_visibility or 0.0))


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


# ----------------------------------------------------------------------------------------------------------------
# Extra Networks panel (issue 4)

ALL_FOLDERS = "All"
# Sort widget label -> the services' sort key (`Services.extra_network_cards`).
EXTRA_NETWORK_SORTS: Mapping[str, str] = {"Name": "name", "Date modified": "date", "Size": "size"}
# A1111's choices for a sidecar's "sd version".
SD_VERSIONS: tuple[str, ...] = ("Unknown", "SD1", "SD2", "SDXL")


def extra_network_query(sort_label: str | None, folder: str | None) -> tuple[str, str]:
    """(sort key, folder filter) for the panel's widgets; "All" folders means no filter."""
    sort = EXTRA_NETWORK_SORTS.get(sort_label or "", "name")
    return sort, "" if not folder or folder == ALL_FOLDERS else folder
