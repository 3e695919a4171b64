"""Fitting a control map to the generation size with the unit's resize mode, and the map as a tensor.

The extension's three modes (its `ResizeMode`): "Just Resize" stretches to the size; "Crop and Resize" (inner
fit) scales until the size is covered and crops the middle; "Resize and Fill" (outer fit) scales until the map
fits inside and fills the border with the median colour of the map's edge pixels, as the extension does.
Inpaint maps (RGBA, the alpha is the mask) keep their alpha through every mode.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from webui.engine.control.preprocessors import control_array

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL = "Just Resize", "Crop and Resize", "Resize and Fill"


def _resample(source: tuple[int, int], target: tuple[int, int]) -> Image.Resampling:
    shrinking = target[0] * target[1] < source[0] * source[1]
    return Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC


def fit_map(control_map: Image.Image, size: tuple[int, int], resize_mode: str) -> Image.Image:
    """`control_map` at `size` (width, height) by the unit's resize mode."""
    if control_map.size == size:
        return control_map
    width, height = size
    raw_w, raw_h = control_map.size
    if resize_mode == JUST_RESIZE:
        return control_map.resize(size, _resample(control_map.size, size))
    k_w, k_h = width / raw_w, height / raw_h
    scale = max(k_w, k_h) if resize_mode == CROP_AND_RESIZE else min(k_w, k_h)
    scaled_size = (max(1, round(raw_w * scale)), max(1, round(raw_h * scale)))
    scaled = control_map.resize(scaled_size, _resample(control_map.size, scaled_size))
    if resize_mode == CROP_AND_RESIZE:
        left, top = (scaled_size[0] - width) // 2, (scaled_size[1] - height) // 2
        return scaled.crop((left, top, left + width, top + height))
    canvas = Image.new(control_map.mode, size, _edge_median(control_map))
    canvas.paste(scaled, ((width - scaled_size[0]) // 2, (height - scaled_size[1]) // 2))
    return canvas


def _edge_median(image: Image.Image) -> tuple[int, ...] | int:
    """The median colour of the outermost rows and columns (the extension's fill for "Resize and Fill")."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    edges = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]], axis=0)
    median = np.median(edges, axis=0).astype(np.uint8)
    if image.mode == "RGBA":
        median[3] = 0  # the filled border is not part of an inpaint mask
    values = tuple(int(v) for v in median)
    return values[0] if len(values) == 1 else values


def map_tensor(control_map: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[1, 3, H, W] in [0, 1] (masked pixels of an inpaint map at -1), the ControlNet's input."""
    array = control_array(control_map)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].to(device, dtype)
