"""The Extras tab's widget values -> an `ExtrasRequest`."""
from __future__ import annotations

from webui.core.errors import ValidationError
from webui.services import ExtrasRequest
from webui.ui.request_fields import as_int
from webui.ui.sentinels import NONE as NO_UPSCALER

EXTRAS_SOURCES: tuple[str, ...] = ("Single Image", "Batch Process", "Batch from Directory")
EXTRAS_RESIZE_MODES: tuple[str, ...] = ("Scale by", "Scale to")


def extras_request(resize_mode: str, scale_by: float, width: float, height: float, crop_to_fit: bool,
                   upscaler_1: str | None, upscaler_2: str | None, upscaler_2_visibility: float) -> ExtrasRequest:
    """The Extras widgets' values -> an `ExtrasRequest` ("Scale to" uses width/height, "Scale by" the factor)."""
    resize_to = (as_int(width, 512), as_int(height, 512)) if resize_mode == EXTRAS_RESIZE_MODES[1] else None
    if resize_to is not None and min(resize_to) < 1:
        raise ValidationError("Scale to needs a width and a height of at least 1.")
    if resize_to is None and not float(scale_by or 0) > 0:
        raise ValidationError("Scale by must be above 0.")
    return ExtrasRequest(scale_by=float(scale_by), resize_to=resize_to, crop_to_fit=bool(crop_to_fit),
                         upscaler_1=upscaler_1 or NO_UPSCALER, upscaler_2=upscaler_2 or NO_UPSCALER,
                         upscaler_2_visibility=float(upscaler_2_visibility or 0.0))
