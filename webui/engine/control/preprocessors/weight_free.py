"""Preprocessors that need no weights: canny, invert, shuffle, tile, inpaint, threshold, blur, color, XDoG, lineart.

Each takes an RGB uint8 array already resized to the processor resolution (tile and inpaint get the original)
and returns the control map as an array: HxWx3 uint8, or HxWx4 for inpaint (alpha = the mask, see
`inpaint_map`). The maths follow what the A1111 ControlNet extension does for each module, written with OpenCV.
"""
from __future__ import annotations

import cv2
import numpy as np

from webui.core.errors import ValidationError


def as_rgb(array: np.ndarray) -> np.ndarray:
    """Any HxW, HxWx1, HxWx3 or HxWx4 uint8 array -> HxWx3 (alpha composited on white, as the extension does)."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        blended = array[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return blended.clip(0, 255).astype(np.uint8)
    return array[:, :, :3]


def canny(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """OpenCV's Canny edges (white on black) with the two hysteresis thresholds."""
    return as_rgb(cv2.Canny(image, int(low), int(high)))


def invert(image: np.ndarray) -> np.ndarray:
    """255 - image: turns black lines on white (a drawing) into the white-on-black maps models were trained on."""
    return 255 - image


def threshold(image: np.ndarray, level: float) -> np.ndarray:
    """Binarization: pixels whose grey value is above `level` become white, the rest black."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return as_rgb(np.where(grey > level, 255, 0).astype(np.uint8))


def blur_gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur with the given sigma (the blur ControlNet's tile/blur models expect)."""
    return cv2.GaussianBlur(image, (0, 0), max(float(sigma), 0.01))


def color_grid(image: np.ndarray) -> np.ndarray:
    """T2I-Adapter's colour grid: the image reduced 64x (bicubic) and blown back up with nearest, i.e. colour blocks."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // 64), max(1, height // 64)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def scribble_xdog(image: np.ndarray, level: float) -> np.ndarray:
    """Scribble by difference of Gaussians: where the fine-minus-coarse blur darkens enough, a white line."""
    pixels = image.astype(np.float32)
    fine = cv2.GaussianBlur(pixels, (0, 0), 0.5)
    coarse = cv2.GaussianBlur(pixels, (0, 0), 5.0)
    darkening = np.min(coarse - fine, axis=2).clip(0, 255)
    return as_rgb(np.where(2.0 * darkening > level, 255, 0).astype(np.uint8))


def lineart_standard(image: np.ndarray) -> np.ndarray:
    """Lines of a white-background drawing: how much darker each pixel is than its blurred neighbourhood,
    normalised by the median line strength (white lines on black)."""
    pixels = image.astype(np.float32)
    background = cv2.GaussianBlur(pixels, (0, 0), 6.0)
    intensity = np.min(background - pixels, axis=2).clip(0, 255)
    strong = intensity[intensity > 8.0]
    scale = float(np.median(strong)) if strong.size else 16.0
    lines = (intensity / max(scale, 16.0) * 127.0).clip(0, 255)
    return as_rgb(lines.astype(np.uint8))


def shuffle(image: np.ndarray, seed: int) -> np.ndarray:
    """Content shuffle: the image remapped through a smooth random flow field, so colours and textures stay but
    the layout is scrambled. Seeded, so the same seed gives the same map (a generation stays reproducible)."""
    height, width = image.shape[:2]
    rng = np.random.default_rng(seed)
    map_x = _smooth_noise(rng, height, width, 256) * float(width - 1)
    map_y = _smooth_noise(rng, height, width, 256) * float(height - 1)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Uniform noise on a coarse grid (one value per `cell` pixels), bicubically upsampled and scaled to [0, 1]."""
    grid = rng.uniform(size=(height // cell + 2, width // cell + 2)).astype(np.float32)
    noise = cv2.resize(grid, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
    noise = noise[cell:cell + height, cell:cell + width]
    span = float(noise.max() - noise.min())
    return ((noise - noise.min()) / span if span > 0 else np.zeros_like(noise)).astype(np.float32)


def tile_resample(image: np.ndarray, rate: float) -> np.ndarray:
    """Tile: the image itself, shrunk by the down-sampling rate (1 keeps it; larger rates leave the model more
    freedom to invent detail)."""
    if rate < 1.1:
        return image
    height, width = image.shape[:2]
    size = (max(1, int(width / rate)), max(1, int(height / rate)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def inpaint_map(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The inpaint control: the image with the mask in the alpha channel (255 = to be repainted).

    The ControlNet inpaint model wants masked pixels set to -1 in its [0, 1] input; a PNG cannot hold that, so
    the map carries the mask as alpha and `control_array` turns it into -1 when the engine builds the tensor.
    """
    if mask is None:
        raise ValidationError("The inpaint preprocessor needs a mask: draw one on the control image, or use "
                              "img2img's inpaint mask.")
    if mask.shape[:2] != image.shape[:2]:
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    binary = np.where(mask > 127, 255, 0).astype(np.uint8)
    return np.concatenate([image, binary[:, :, None]], axis=2)
