"""Preparing img2img/inpaint inputs the A1111 way: resize modes, mask invert/blur, masked-content fills.

Pure image work (PIL), separate from sampling so it is easy to test: each resize mode must give the requested
size, and what is outside the mask must come back unchanged.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

LANCZOS = Image.Resampling.LANCZOS


def resize_image(image: Image.Image, width: int, height: int, mode: int) -> Image.Image:
    """0 just resize, 1 crop and resize (cover, centre crop), 2 resize and fill (fit, fill the rest with the
    stretched image), 3 latent upscale (pixels resized as 0 here; the latent path resizes latents instead)."""
    image = image.convert("RGB")
    if mode in (0, 3):
        return image.resize((width, height), LANCZOS)
    ratio, src_ratio = width / height, image.width / image.height
    if mode == 1:
        scale_w = width if ratio > src_ratio else round(image.width * height / image.height)
        scale_h = height if ratio <= src_ratio else round(image.height * width / image.width)
        resized = image.resize((max(scale_w, 1), max(scale_h, 1)), LANCZOS)
        left, top = (resized.width - width) // 2, (resized.height - height) // 2
        return resized.crop((left, top, left + width, top + height))
    fit_w = width if ratio < src_ratio else max(1, round(image.width * height / image.height))
    fit_h = height if ratio >= src_ratio else max(1, round(image.height * width / image.width))
    canvas = image.resize((width, height), LANCZOS).filter(ImageFilter.GaussianBlur(8))
    canvas.paste(image.resize((fit_w, fit_h), LANCZOS), ((width - fit_w) // 2, (height - fit_h) // 2))
    return canvas


def prepare_mask(mask: Image.Image, width: int, height: int, mode: int, invert: bool, blur: int) -> Image.Image:
    """The mask at the target size (white = repaint), inverted for "inpaint not masked", blurred."""
    if mask.mode in ("RGBA", "LA"):
        mask = mask.getchannel("A") if mask.getextrema()[-1] != (255, 255) else mask.convert("L")
    mask = mask.convert("L")
    mask = resize_image(mask.convert("RGB"), width, height, mode).convert("L")
    mask = mask.point(lambda v: 255 if v > 127 else 0)
    if invert:
        mask = ImageOps.invert(mask)
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask


def fill_masked(image: Image.Image, mask: Image.Image, fill: int, seed: int) -> Image.Image:
    """A1111's "masked content" in pixel space: 0 fill (colours from around the mask), 1 original, 2 latent noise
    (random pixels), 3 latent nothing (neutral grey). For 2 and 3 this is the fallback where latents cannot be
    filled (inpainting models, "only masked"); otherwise `generation.latent_filled` fills the latents."""
    if fill == 1:
        return image
    hard = mask.point(lambda v: 255 if v > 0 else 0)
    if fill == 0:
        filled = image
        for radius in (64, 32, 16, 8, 4, 2, 1):  # repeatedly blur and paste the known pixels back
            filled = Image.composite(image, filled.filter(ImageFilter.GaussianBlur(radius)), ImageOps.invert(hard))
        return filled
    if fill == 2:
        noise = np.random.default_rng(seed).integers(0, 256, (image.height, image.width, 3), dtype=np.uint8)
        return Image.composite(Image.fromarray(noise), image, hard)
    return Image.composite(Image.new("RGB", image.size, (127, 127, 127)), image, hard)
