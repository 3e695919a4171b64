"""The Extras tab's upscaling: scale by or to a size, upscaler 1 and an optional upscaler 2 blended in with a
visibility, as A1111's postprocessing does; the parameters are written into the saved image."""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from webui.core.infotext import format_param_line
from webui.engine.upscale.upscalers import UpscalerLibrary


@dataclass(frozen=True)
class ExtrasRequest:
    scale_by: float = 2.0
    resize_to: tuple[int, int] | None = None  # "scale to" (width, height); None = "scale by"
    crop_to_fit: bool = True
    upscaler_1: str = "Lanczos"
    upscaler_2: str = "None"
    upscaler_2_visibility: float = 0.0


def target_size(image: Image.Image, request: ExtrasRequest) -> tuple[int, int]:
    if request.resize_to:
        return request.resize_to
    return max(1, round(image.width * request.scale_by)), max(1, round(image.height * request.scale_by))


def work_size(source: tuple[int, int], request: ExtrasRequest) -> tuple[int, int]:
    """The size upscaler 1 makes before the crop: with "scale to" and "crop to fit", the size that covers the
    target keeping the source's aspect ratio (larger than the target for a differently shaped source)."""
    width, height = source
    size = request.resize_to or (max(1, round(width * request.scale_by)), max(1, round(height * request.scale_by)))
    if not (request.resize_to and request.crop_to_fit):
        return size
    ratio = max(size[0] / width, size[1] / height)
    return max(size[0], round(width * ratio)), max(size[1], round(height * ratio))


def _fit(image: Image.Image, size: tuple[int, int], crop: bool) -> Image.Image:
    """Scale to cover `size` keeping the aspect ratio, then centre-crop (A1111's "crop to fit")."""
    if image.size == size:
        return image
    if not crop:
        return image.resize(size, Image.Resampling.LANCZOS)
    ratio = max(size[0] / image.width, size[1] / image.height)
    scaled = image.resize((max(size[0], round(image.width * ratio)), max(size[1], round(image.height * ratio))),
                          Image.Resampling.LANCZOS)
    left, top = (scaled.width - size[0]) // 2, (scaled.height - size[1]) // 2
    return scaled.crop((left, top, left + size[0], top + size[1]))


def run_extras(image: Image.Image, request: ExtrasRequest, upscalers: UpscalerLibrary) -> tuple[Image.Image, str]:
    """The upscaled image and its parameter line (A1111's `Postprocess ...` keys)."""
    source = image.convert("RGB")
    size = target_size(source, request)
    cover = work_size(source.size, request)
    result = _fit(upscalers.upscale(source, request.upscaler_1, cover), size, request.crop_to_fit)
    params: dict[str, object] = {"Postprocess upscaler": request.upscaler_1}
    if request.resize_to:
        params["Postprocess upscale to"] = f"{size[0]}x{size[1]}"
        params["Postprocess crop to fit"] = request.crop_to_fit
    else:
        params["Postprocess upscale by"] = request.scale_by
    if request.upscaler_2 not in ("None", "") and request.upscaler_2_visibility > 0:
        second = _fit(upscalers.upscale(source, request.upscaler_2, cover), size, request.crop_to_fit)
        result = Image.blend(result, second, request.upscaler_2_visibility)
        params["Postprocess upscaler 2"] = request.upscaler_2
        params["Postprocess upscaler 2 visibility"] = request.upscaler_2_visibility
    return result, format_param_line(params)
