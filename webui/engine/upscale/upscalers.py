"""Upscalers: Lanczos/Nearest built in, and model files (Real-ESRGAN, ESRGAN, SwinIR and whatever `spandrel`
identifies) from `models/ESRGAN` and `models/RealESRGAN`, run tile by tile so memory stays bounded.

Why spandrel: the `realesrgan` package cannot be imported with current torchvision (measured); spandrel is
maintained and identifies architectures from the weights. Files are read by our own loader (pickles only through
`torch.load(weights_only=True)`), then handed to spandrel as a state dict.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webui.core.errors import ModelLoadError, ModelNotFoundError
from webui.engine.models.state_dict import load_state_dict

log = logging.getLogger(__name__)

BUILTIN = ("None", "Lanczos", "Nearest")
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
MODEL_EXTENSIONS = (".pth", ".pt", ".safetensors", ".ckpt")


@dataclass(frozen=True)
class UpscalerEntry:
    name: str
    path: Path | None = None
    scale: int = 1


def tile_ranges(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end of tiles covering [0, size) with at least `overlap` pixels shared by neighbours."""
    if tile <= 0 or size <= tile:
        return [(0, size)]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step)) + [size - tile]
    return [(s, s + tile) for s in sorted(set(starts))]


def _ramp(length: int, overlap_before: int, overlap_after: int) -> torch.Tensor:
    """Weights along one axis: each tile owns its half of every overlap. A tile's border pixels see zero
    padding instead of their neighbours; cutting in the middle of the overlap drops exactly those, so for a model
    whose receptive field is under half the overlap the tiled result equals the untiled one."""
    weights = torch.ones(length)
    if overlap_before > 0:
        weights[: overlap_before // 2] = 0
    if overlap_after > 0:
        weights[length - overlap_after + overlap_after // 2:] = 0
    return weights


def run_tiled(model, image: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """Apply `model` ([1,3,h,w] -> [1,3,h*s,w*s]) tile by tile; memory is bounded by the tile size."""
    _, channels, height, width = image.shape
    out = torch.zeros(1, channels, height * scale, width * scale)
    total = torch.zeros(1, 1, height * scale, width * scale)
    rows, cols = tile_ranges(height, tile, overlap), tile_ranges(width, tile, overlap)
    for ri, (y0, y1) in enumerate(rows):
        for ci, (x0, x1) in enumerate(cols):
            piece = model(image[:, :, y0:y1, x0:x1]).float().cpu()
            top = (rows[ri - 1][1] - y0) * scale if ri > 0 else 0
            bottom = (y1 - rows[ri + 1][0]) * scale if ri + 1 < len(rows) else 0
            left = (cols[ci - 1][1] - x0) * scale if ci > 0 else 0
            right = (x1 - cols[ci + 1][0]) * scale if ci + 1 < len(cols) else 0
            mask = _ramp(piece.shape[2], top, bottom)[:, None] * _ramp(piece.shape[3], left, right)[None, :]
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += piece * mask
            total[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += mask
    return out / total.clamp_min(1e-8)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def _to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor.squeeze(0).clamp(0, 1).permute(1, 2, 0).numpy()
    return Image.fromarray((array * 255.0).round().astype(np.uint8))


class UpscalerLibrary:
    """Lists upscalers and runs them; loaded models are kept (one at a time) for repeated use.

    `tiling`, when given, is asked for (tile size, overlap) at every upscale: the app passes the Settings options
    `ESRGAN_tile` / `ESRGAN_tile_overlap`, so a change applies to the next upscale. Without it the fixed `tile` and
    `overlap` are used (A1111's defaults, 192 and 8)."""

    def __init__(self, folders: tuple[Path, ...], device: torch.device, tile: int = 192, overlap: int = 8,
                 tiling: Callable[[], tuple[int, int]] | None = None):
        self.folders = folders
        self.device = device
        self.tile = tile
        self.overlap = overlap
        self.tiling = tiling
        self._loaded: tuple[Path, object] | None = None
        self._lock = threading.Lock()

    def tile_settings(self) -> tuple[int, int]:
        """(tile size, overlap) for model upscalers; tile size 0 = the whole image at once."""
        return self.tiling() if self.tiling is not None else (self.tile, self.overlap)

    def model_files(self) -> list[Path]:
        files: list[Path] = []
        for folder in self.folders:
            if folder.is_dir():
                files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in MODEL_EXTENSIONS)
        return files

    def names(self) -> list[str]:
        return [*BUILTIN, *(p.stem for p in self.model_files())]

    def _model(self, name: str):
        path = next((p for p in self.model_files() if p.stem == name), None)
        if path is None:
            raise ModelNotFoundError(f"No upscaler named '{name}'. Put ESRGAN/Real-ESRGAN/SwinIR files in "
                                     f"models/ESRGAN or models/RealESRGAN. Available: {', '.join(self.names())}.")
        with self._lock:
            if self._loaded is not None and self._loaded[0] == path:
                return self._loaded[1]
            import spandrel

            try:
                descriptor = spandrel.ModelLoader().load_from_state_dict(load_state_dict(path))
            except ModelLoadError:
                raise
            except Exception as exc:  # noqa: BLE001 - spandrel raises many kinds for unknown files
                raise ModelLoadError(f"'{path.name}' is not an upscaler model spandrel recognises: {exc}") from exc
            if not isinstance(descriptor, spandrel.ImageModelDescriptor):
                raise ModelLoadError(f"'{path.name}' is not an image upscaler (it is a {descriptor.purpose} model).")
            descriptor.to(self.device).eval()
            self._loaded = (path, descriptor)
            return descriptor

    def model_scale(self, name: str) -> int:
        return 1 if name in BUILTIN else int(self._model(name).scale)

    def upscale(self, image: Image.Image, name: str, size: tuple[int, int], tile: int | None = None) -> Image.Image:
        """`image` upscaled to `size` with upscaler `name` (a model runs at its own scale, then Lanczos fits)."""
        if name in ("None", "", None):
            return image.resize(size, Image.Resampling.LANCZOS) if image.size != size else image
        if name == "Lanczos":
            return image.resize(size, Image.Resampling.LANCZOS)
        if name == "Nearest":
            return image.resize(size, Image.Resampling.NEAREST)
        descriptor = self._model(name)
        current = image.convert("RGB")
        default_tile, overlap = self.tile_settings()
        tile = default_tile if tile is None else tile
        while current.width < size[0] or current.height < size[1]:
            tensor = _to_tensor(current).to(self.device, descriptor.dtype)
            with torch.inference_mode():
                result = run_tiled(descriptor, tensor, int(descriptor.scale), tile, overlap)
            current = _to_image(result)
            if descriptor.scale == 1:
                break
        return current.resize(size, Image.Resampling.LANCZOS) if current.size != size else current
