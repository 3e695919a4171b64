"""Every size the server accepts from a client, in one frozen table, and the pure checks that use it.

Why one place: a limit that lives next to each feature drifts (the API allowing what the UI refuses, a script
multiplying a per-request cap by a thousand). Each number here bounds memory or time that one request can claim,
so that a typo or a hostile client gets a readable refusal before anything is decoded, expanded or queued,
never a 500 or a server that stops answering. README.md ("Limits") lists them for users.

The values follow A1111 where it has one (its sliders: 2048 per side, batch count 100 x batch size 8) and
leave room above it for API clients, which A1111 does not limit at all.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from webui.core.errors import ValidationError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The maxima. Pixel counts are width x height; byte counts are of the raw HTTP body or uploaded file."""

    # one generation
    max_side: int = 8192  # width, height, hires width/height, "resize seed from"
    max_pixels: int = 4096 * 4096  # first pass and hires final size: A1111's 2048 sliders with a 2x hires fix
    max_steps: int = 1000
    max_batch_size: int = 64
    max_batch_count: int = 1000
    max_job_images: int = 1000  # batch count x batch size
    # scripts
    max_axis_values: int = 1000  # values on one X/Y/Z axis
    max_axis_text: int = 64 * 1024  # characters of one axis' values, refused before they are parsed
    max_xyz_cells: int = 1000  # X x Y x Z
    max_script_images: int = 4000  # cells x batch count x batch size of one script run
    # images sent in (img2img init images and mask, Extras, PNG info)
    max_input_images: int = 64
    max_input_pixels: int = 8192 * 8192  # one image, read from its header before it is decoded
    max_input_total_pixels: int = 4 * 8192 * 8192  # all images of one request, decoded at once
    # Extras upscaling
    max_upscale_factor: float = 8.0
    max_upscale_pixels: int = 8192 * 8192  # the upscaled image
    # HTTP
    max_request_bytes: int = 64 * MIB  # a request body (base64 images included)
    max_upload_bytes: int = 48 * MIB  # a file uploaded to the UI: 48 MiB is 64 MiB once base64-encoded
    # training
    max_training_processes: int = 16
    max_training_resolution: int = 4096
    max_network_dim: int = 1024


LIMITS = Limits()


def size_text(pixels: int) -> str:
    """A pixel count as people read it: 16,777,216 pixels (4096x4096)."""
    side = math.isqrt(pixels)
    square = f" ({side}x{side})" if side * side == pixels else ""
    return f"{pixels:,} pixels{square}"


def byte_text(count: int) -> str:
    return f"{count // MIB} MiB" if count % MIB == 0 else f"{count:,} bytes"


def is_finite(value: object) -> bool:
    """True for a real, finite number (bools excluded); NaN and infinity fail every range check silently
    otherwise, or pass `not a <= x <= b` tests written the other way round."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def image_size_problems(width: int, height: int, what: str, limits: Limits = LIMITS) -> list[str]:
    """Problems of an image the model draws (first pass or hires final size)."""
    problems = []
    if not 8 <= width <= limits.max_side or not 8 <= height <= limits.max_side:
        problems.append(f"{what} {width}x{height} is outside 8-{limits.max_side} pixels per side.")
    elif width * height > limits.max_pixels:
        problems.append(f"{what} {width}x{height} has more than {size_text(limits.max_pixels)}.")
    return problems


def job_images_problems(batch_size: int, n_iter: int, limits: Limits = LIMITS) -> list[str]:
    """Batch size and count, and their product (every image of a job is held in memory until it ends)."""
    problems = []
    if not 1 <= batch_size <= limits.max_batch_size:
        problems.append(f"Batch size must be between 1 and {limits.max_batch_size} (got {batch_size}).")
    if not 1 <= n_iter <= limits.max_batch_count:
        problems.append(f"Batch count must be between 1 and {limits.max_batch_count} (got {n_iter}).")
    if not problems and batch_size * n_iter > limits.max_job_images:
        problems.append(f"Batch count x batch size makes {batch_size * n_iter} images; one job makes at most "
                        f"{limits.max_job_images}.")
    return problems


def check_script_size(script: str, cells: int, images_per_cell: int, limits: Limits = LIMITS) -> None:
    """Refuse a script run whose images would not fit (checked from counts, before any cell is built)."""
    if cells * images_per_cell > limits.max_script_images:
        raise ValidationError(f"{script}: {cells} cells x {images_per_cell} image(s) each makes "
                              f"{cells * images_per_cell} images; a script run makes at most "
                              f"{limits.max_script_images}. Use fewer values or a smaller batch.")


def check_input_images(sizes: Iterable[tuple[int, int]], what: str = "image", limits: Limits = LIMITS) -> None:
    """Refuse images sent in (sizes from their headers) that are too many or too large to decode. `what` names
    one of them ("input image")."""
    sizes = list(sizes)
    if len(sizes) > limits.max_input_images:
        raise ValidationError(f"{len(sizes)} {what}s were sent; at most {limits.max_input_images} are accepted.")
    total = 0
    for index, (width, height) in enumerate(sizes, 1):
        name = f"the {what}" if len(sizes) == 1 else f"{what} #{index}"
        if width * height > limits.max_input_pixels:
            raise ValidationError(f"{name[0].upper()}{name[1:]} is {width}x{height}; images of at most "
                                  f"{size_text(limits.max_input_pixels)} are accepted.")
        total += width * height
    if total > limits.max_input_total_pixels:
        raise ValidationError(f"The {what}s have {total:,} pixels together; one request takes at most "
                              f"{size_text(limits.max_input_total_pixels)}.")


def upscale_problems(scale_by: float, resize_to: tuple[int, int] | None, visibility: float,
                     limits: Limits = LIMITS) -> list[str]:
    """Extras' "scale by" / "scale to" settings (the image sizes are checked by `check_upscaled_size`)."""
    problems = []
    if resize_to is not None:
        if not all(is_finite(side) and 1 <= side <= limits.max_side for side in resize_to):
            problems.append(f"Upscale target {resize_to[0]}x{resize_to[1]} is outside 1-{limits.max_side} pixels "
                            f"per side.")
    elif not is_finite(scale_by) or not 0 < scale_by <= limits.max_upscale_factor:
        problems.append(f"Upscale factor must be a number above 0 and at most {limits.max_upscale_factor:g} "
                        f"(got {scale_by}).")
    if not is_finite(visibility) or not 0.0 <= visibility <= 1.0:
        problems.append(f"Upscaler 2 visibility must be between 0 and 1 (got {visibility}).")
    return problems


def check_upscaled_size(width: int, height: int, limits: Limits = LIMITS) -> None:
    """Refuse an upscale whose result would be larger than `max_upscale_pixels`."""
    if width * height > limits.max_upscale_pixels:
        raise ValidationError(f"The upscaled image would be {width}x{height}; results of at most "
                              f"{size_text(limits.max_upscale_pixels)} are made. Use a smaller factor.")
