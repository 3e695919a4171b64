"""Decoders for live previews besides "Approx cheap": TAESD (tiny decoders from `models/VAE-approx`) and the
model's own VAE ("Full").

Why TAESD from local files only: A1111 users keep `taesd_decoder.pth` / `taesdxl_decoder.pth` (madebyollin's
files) in `models/VAE-approx`; nothing is downloaded. The files come in the original layout (an `nn.Sequential`
whose index 0 is a clamp, so keys are `1.weight`, `3.conv.0.weight`, ...) or in diffusers' `AutoencoderTiny`
layout (`decoder.layers.0.weight`); both load into diffusers' `AutoencoderTiny`, whose decoder is the same network
shifted by one index (its clamp is in `forward`). A file that does not fit is a `ModelLoadError`; the preview then
falls back to Approx cheap (the caller logs it), never failing the generation.
"""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import safetensors.torch
import torch
from diffusers import AutoencoderTiny
from PIL import Image

from webui.core.errors import ModelLoadError
from webui.engine.runtime.offload_store import execution_device

log = logging.getLogger(__name__)

# family -> decoder file stem in models/VAE-approx (A1111's names).
TAESD_STEMS: dict[str, str] = {"sd1": "taesd_decoder", "sd2": "taesd_decoder", "sdxl": "taesdxl_decoder",
                               "sd3": "taesd3_decoder", "flux": "taef1_decoder"}
TAESD_EXTENSIONS = (".safetensors", ".pth")
_ORIGINAL_KEY = re.compile(r"^(\d+)\.(.+)$")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return safetensors.torch.load_file(str(path))
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors/pickle raise many types for a damaged file
        raise ModelLoadError(f"'{path.name}' could not be read as a TAESD decoder: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"'{path.name}' does not hold a state dict.")
    return loaded


def _diffusers_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The decoder's weights under `AutoencoderTiny.decoder`'s names (`layers.N...`)."""
    mapped = {}
    for key, tensor in state.items():
        match = _ORIGINAL_KEY.match(key)
        if match:  # original TAESD: index 0 is the clamp, so layer N is diffusers' N - 1
            mapped[f"layers.{int(match.group(1)) - 1}.{match.group(2)}"] = tensor
        elif key.startswith("decoder."):
            mapped[key.removeprefix("decoder.")] = tensor
        elif key.startswith("layers."):
            mapped[key] = tensor
    return mapped


def load_taesd(path: Path) -> AutoencoderTiny:
    """An `AutoencoderTiny` with the decoder weights of `path` (its latent channels and width read from the first
    convolution; the block layout is TAESD's)."""
    weights = _diffusers_keys(_read_state_dict(path))
    first = weights.get("layers.0.weight")
    if first is None or first.dim() != 4:
        raise ModelLoadError(f"'{path.name}' is not a TAESD decoder (no first convolution).")
    width, channels = int(first.shape[0]), int(first.shape[1])
    model = AutoencoderTiny(latent_channels=channels, decoder_block_out_channels=(width,) * 4,
                            encoder_block_out_channels=(width,) * 4)
    try:
        model.decoder.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"'{path.name}' does not fit a TAESD decoder: {exc}") from exc
    return model.eval().requires_grad_(False)


def _to_image(decoded: torch.Tensor) -> Image.Image:
    """A [-1, 1] image tensor `[3, H, W]` -> PIL."""
    pixels = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels, mode="RGB")


class TaesdLibrary:
    """TAESD decoders from one folder, loaded on first use per family and kept (they are ~5 MB each)."""

    def __init__(self, folder: Path):
        self._folder = Path(folder)
        self._lock = threading.Lock()
        self._loaded: dict[Path, AutoencoderTiny] = {}

    def file_for(self, family: str) -> Path | None:
        stem = TAESD_STEMS.get(family)
        if stem is None:
            return None
        return next((path for ext in TAESD_EXTENSIONS if (path := self._folder / f"{stem}{ext}").is_file()), None)

    def decoder(self, family: str) -> AutoencoderTiny | None:
        """The family's decoder, or None when its file is not in the folder."""
        path = self.file_for(family)
        if path is None:
            return None
        with self._lock:
            if path not in self._loaded:
                self._loaded[path] = load_taesd(path)
            return self._loaded[path]

    def decode(self, family: str, latents: torch.Tensor) -> Image.Image | None:
        """One latent image `[C, H, W]` (as the UNet sees it) -> a full-size preview; None without a decoder."""
        model = self.decoder(family)
        if model is None:
            return None
        model.to(latents.device, latents.dtype if latents.is_floating_point() else torch.float32)
        with torch.no_grad():
            decoded = model.decode(latents.unsqueeze(0).to(model.dtype)).sample[0]
        return _to_image(decoded)


def vae_decode(vae: torch.nn.Module, latents: torch.Tensor) -> Image.Image:
    """"Full": the model's own VAE on one latent image (scaling and shift as the pipeline applies them)."""
    config = vae.config
    shift = getattr(config, "shift_factor", None) or 0.0
    scaled = latents.unsqueeze(0) / config.scaling_factor + shift
    with torch.no_grad():
        decoded = vae.decode(scaled.to(execution_device(vae), vae.dtype)).sample[0]
    return _to_image(decoded)
