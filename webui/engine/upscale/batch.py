"""Extras over many images: the checks made before anything is queued, and the loops that run inside a job.

Why here: checking sizes and reading a folder image by image is engine work; the service only resolves the
client's folders and queues the job. Images of a folder are opened one at a time inside the job, so a large
folder never sits in memory at once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from webui.core.errors import ValidationError
from webui.core.limits import check_input_images, check_upscaled_size, upscale_problems
from webui.core.progress import CancelToken, ProgressTracker
from webui.engine.upscale.postprocess import ExtrasRequest, run_extras, work_size
from webui.engine.upscale.upscalers import UpscalerLibrary

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# One upscaled image: (image, the file it was saved to or None, its parameters text).
Upscaled = tuple[Any, Path | None, str]


def check_extras_request(request: ExtrasRequest, sizes: list[tuple[int, int]]) -> None:
    """Extras settings, the images' sizes and each result's size, before anything is queued or decoded: a NaN,
    infinite or huge factor (or a thin image "scaled to" a square) would otherwise fail inside the job or ask the
    upscaler for an image no machine holds."""
    problems = upscale_problems(request.scale_by, request.resize_to, request.upscaler_2_visibility)
    if problems:
        raise ValidationError(" ".join(problems))
    check_input_images(sizes)
    for size in sizes:
        check_upscaled_size(*work_size(size, request))


def folder_images(folder: Path) -> list[Path]:
    """The images (by suffix) directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def upscale_images(images: list[Any], request: ExtrasRequest, upscalers: UpscalerLibrary,
                   save: Callable[[Any, str], Path] | None, token: CancelToken,
                   progress: ProgressTracker) -> list[Upscaled]:
    """Upscale images in order until done or interrupted; `save` (when given) writes each result."""
    progress.start("extras", len(images), 1)
    results: list[Upscaled] = []
    for index, image in enumerate(images):
        if token.interrupted:
            break
        progress.update(job_no=index)
        upscaled, info = run_extras(image, request, upscalers)
        results.append((upscaled, save(upscaled, info) if save is not None else None, info))
    return results


def upscale_files(files: list[Path], request: ExtrasRequest, upscalers: UpscalerLibrary,
                  save: Callable[[Any, str], Path], token: CancelToken, progress: ProgressTracker) -> list[Upscaled]:
    """Like `upscale_images` for image files: each is opened (and its size checked from the header, before
    decoding) inside the loop; a file that is not a usable image is skipped with a log line."""
    progress.start("extras", len(files), 1)
    results: list[Upscaled] = []
    for index, path in enumerate(files):
        if token.interrupted:
            break
        progress.update(job_no=index)
        try:
            with Image.open(path) as image:
                check_extras_request(request, [image.size])
                upscaled, info = run_extras(image, request, upscalers)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValidationError) as exc:
            log.warning("Extras: skipped %s: %s", path, exc)
            continue
        results.append((upscaled, save(upscaled, info), info))
    return results
