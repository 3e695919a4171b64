"""The img2img tab's widget values -> a `GenerationRequest`, through the request builder the API uses too: the
sub-tab decides where the image and the mask come from."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops

from webui.core.errors import ValidationError
from webui.core.request_builder import build_request
from webui.core.requests import INPAINT_FILL, RESIZE_MODES, GenerationRequest
from webui.ui.request_fields import SamplingValues, SeedValues, common_fields

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


def image_side_fields(widgets: InpaintWidgets) -> dict[str, Any]:
    """The image side of the selected sub-tab as A1111 img2img fields.

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
    return {"init_images": (image.convert("RGB"),), "mask": mask,
            "resize_mode": _index(widgets.resize_mode, RESIZE_MODES), "mask_blur": widgets.mask_blur,
            "inpainting_fill": _index(widgets.masked_content, INPAINT_FILL, default=1),
            "inpaint_full_res": widgets.inpaint_area == INPAINT_AREAS[1],
            "inpaint_full_res_padding": widgets.padding, "inpainting_mask_invert": widgets.mask_mode == MASK_MODES[1]}


def img2img_fields(sampling: SamplingValues, seeds: SeedValues, denoising_strength: float | None,
                   widgets: InpaintWidgets) -> dict[str, Any]:
    """The tab's A1111 fields (the same names an API body uses)."""
    return {**common_fields(sampling, seeds), "denoising_strength": denoising_strength,
            **image_side_fields(widgets)}


def img2img_request(sampling: SamplingValues, seeds: SeedValues, denoising_strength: float | None,
                    widgets: InpaintWidgets) -> GenerationRequest:
    """The img2img/inpaint request: the txt2img-like fields plus the image side of the selected sub-tab."""
    return build_request(img2img_fields(sampling, seeds, denoising_strength, widgets))


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
