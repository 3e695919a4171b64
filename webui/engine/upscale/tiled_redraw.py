"""The "Ultimate SD upscale" runner: upscale with an upscaler from the registry, then redraw the canvas patch by
patch (tiles, then seams-fix bands or half-tile offsets) with img2img, pasting each result back before the next.

How one patch is redrawn (what A1111's "inpaint only masked" does, at the tile's own resolution):
1. its mask is drawn (a tile's rectangle, a seam band's gradient ...) and blurred by the mask blur;
2. the crop is every pixel the blurred mask touches plus `padding` pixels of context, rounded up to a multiple of
   8 (`webui.core.tile_plan.crop_region`), so it is generated at its own size, never resampled;
3. the crop is redrawn as an ordinary inpaint request (the request's prompt, seed, sampler, steps, CFG) whose hard
   mask is everything the blurred mask touches, through `redraw` (the services' normal generation path: same
   loaded model, LoRAs, validation);
4. the result is pasted into the canvas weighted by the blurred mask. Where that weight falls to 0 the canvas is
   kept as it was, so neighbouring tiles meet in a smooth blend instead of an edge.

Why the hard mask covers the whole blurred mask: the blend in step 4 is only seamless when the generated pixels
under a partial weight come from the same generation as those under full weight.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.results import GeneratedImage
from webui.core.tile_plan import SHAPE_RADIAL, SHAPE_RAMP_X, SHAPE_RAMP_Y, SHAPE_RECT, Patch, Rect, crop_region
from webui.core.tiled_upscale import TiledUpscaleOptions, TiledUpscalePlan, patch_settings
from webui.engine.upscale.upscalers import UpscalerLibrary

Redraw = Callable[[GenerationRequest], GeneratedImage | None]


@dataclass(frozen=True)
class TiledUpscaleOutput:
    """The canvas after the redraw passes, after the seams fix (None without one), the last patch's generation
    (its infotext names model, sampler, seed) and how far it got."""

    upscaled: Image.Image
    seams_fixed: Image.Image | None
    last: GeneratedImage | None
    patches_done: int
    interrupted: bool


def _ramp(length: int) -> np.ndarray:
    """0 at both ends, 1 in the middle, linear in between (a seam band's profile)."""
    centres = (np.arange(length) + 0.5) / length
    return 1.0 - np.abs(2.0 * centres - 1.0)


def shape_values(patch: Patch) -> np.ndarray:
    """The mask over `patch.rect` (height x width, 0..1) before blurring."""
    height, width = patch.rect.height, patch.rect.width
    if patch.shape == SHAPE_RECT:
        return np.ones((height, width))
    if patch.shape == SHAPE_RAMP_X:
        return np.broadcast_to(_ramp(width)[None, :], (height, width))
    if patch.shape == SHAPE_RAMP_Y:
        return np.broadcast_to(_ramp(height)[:, None], (height, width))
    if patch.shape == SHAPE_RADIAL:
        ys = (np.arange(height) + 0.5) / height * 2.0 - 1.0
        xs = (np.arange(width) + 0.5) / width * 2.0 - 1.0
        return np.clip(1.0 - np.hypot(ys[:, None], xs[None, :]), 0.0, 1.0)
    raise ValueError(f"unknown patch shape {patch.shape!r}")


def patch_mask(patch: Patch, size: tuple[int, int], blur: int) -> tuple[Rect, Image.Image] | None:
    """The blurred mask of `patch` on a canvas of `size`, cut to the pixels it touches: (where, mask "L").
    None when it touches none (a patch wholly outside the canvas)."""
    reach = 4 * blur + 2 if blur > 0 else 0  # PIL's Gaussian (three box passes) stays within ~3 radii
    area = patch.rect.grow(reach).clip(*size)
    if area.empty:
        return None
    values = np.zeros((area.height, area.width))
    inside = patch.rect.clip(*size)
    if not inside.empty:
        full = shape_values(patch)
        values[inside.top - area.top:inside.bottom - area.top, inside.left - area.left:inside.right - area.left] = \
            full[inside.top - patch.rect.top:inside.bottom - patch.rect.top,
                 inside.left - patch.rect.left:inside.right - patch.rect.left]
    mask = Image.fromarray(np.round(values * 255.0).astype(np.uint8), mode="L")
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    box = mask.getbbox()
    if box is None:
        return None
    where = Rect(area.left + box[0], area.top + box[1], area.left + box[2], area.top + box[3])
    return where, mask.crop(box)


def tile_request(base: GenerationRequest, crop: Image.Image, hard_mask: Image.Image,
                 denoising_strength: float) -> GenerationRequest:
    """The inpaint request that redraws one crop at its own size (masked content "original", no blur: the blur
    is already in the paste weights)."""
    inputs = Img2ImgInputs(init_images=(crop,), mask=hard_mask, resize_mode=0, mask_blur=0, inpainting_fill=1)
    return dataclasses.replace(base, width=crop.width, height=crop.height, img2img=inputs, batch_size=1, n_iter=1,
                               enable_hr=False, save_images=False, denoising_strength=denoising_strength)


def redraw_patch(canvas: Image.Image, patch: Patch, base: GenerationRequest, options: TiledUpscaleOptions,
                 redraw: Redraw) -> GeneratedImage | None:
    """Redraw one patch of `canvas` in place. Returns the generation, or None when nothing was generated
    (interrupted, or a patch outside the canvas)."""
    strength, blur, padding = patch_settings(patch, options, base.denoising_strength)
    found = patch_mask(patch, canvas.size, blur)
    if found is None:
        return None
    where, soft = found
    crop = crop_region(where, padding, canvas.size)
    weights = Image.new("L", (crop.width, crop.height), 0)
    weights.paste(soft, (where.left - crop.left, where.top - crop.top))
    hard = weights.point(lambda v: 255 if v > 0 else 0)
    result = redraw(tile_request(base, canvas.crop(crop.as_box()), hard, strength))
    if result is None:
        return None
    canvas.paste(result.image.convert("RGB"), (crop.left, crop.top), weights)
    return result


def run_tiled_upscale(source: Image.Image, base: GenerationRequest, options: TiledUpscaleOptions,
                      plan: TiledUpscalePlan, upscalers: UpscalerLibrary, redraw: Redraw,
                      should_stop: Callable[[], bool]) -> TiledUpscaleOutput:
    """Upscale `source` to `plan.size` with `options.upscaler`, then redraw every patch of the plan in order."""
    canvas = upscalers.upscale(source.convert("RGB"), options.upscaler, plan.size).convert("RGB").copy()
    last, done = None, 0
    redraw_count = sum(len(group) for group in plan.redraw)
    upscaled = None
    for index, patch in enumerate(plan.patches):
        if index == redraw_count:
            upscaled = canvas.copy()
        if should_stop():
            break
        result = redraw_patch(canvas, patch, base, options, redraw)
        if result is not None:
            last, done = result, done + 1
    interrupted = should_stop()
    if upscaled is None:  # no seams fix, or stopped before it
        return TiledUpscaleOutput(canvas, None, last, done, interrupted)
    return TiledUpscaleOutput(upscaled, canvas, last, done, interrupted)
