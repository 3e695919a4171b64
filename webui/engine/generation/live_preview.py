"""Live previews while sampling: the latest latents of the running job, decoded cheaply on request.

Why a UNet pre-hook: the latents the UNet is about to denoise are exactly the current state of the image, and a
torch forward pre-hook observes them without touching the sampling code (it works for every pipeline view, the
hires pass and the composable UNet wrapper, which all call the same UNet module). The hook only keeps a
reference-sized copy of the first image's latents; decoding happens in the thread that asks (the API's
`progress`), never on the GPU worker, so previews cost the sampler nothing measurable.

Decoding is A1111's "Approx cheap": a fixed linear map from the 4 latent channels to RGB (factors fitted for the
SD and SDXL VAEs, published in the diffusers forum thread "decoding latents to RGB without upscaling"), so no
VAE pass is needed. Other latent layouts fall back to a per-channel normalisation of the first three channels.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from PIL import Image

from webui.engine.models.detection import SDXL

# latent channel -> (R, G, B) contribution, per family.
_SD_FACTORS = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
_SDXL_FACTORS = ((0.3448, 0.4168, 0.4395), (-0.1953, -0.0290, 0.0250), (0.1074, 0.0886, -0.0163),
                 (-0.3730, -0.2499, -0.2088))


def latents_to_rgb(latents: torch.Tensor, family: str) -> Image.Image:
    """One latent image `[C, H, W]` -> a small RGB image (H x W), by the family's linear approximation."""
    latents = latents.detach().to("cpu", torch.float32)
    if latents.shape[0] == 4:
        factors = torch.tensor(_SDXL_FACTORS if family == SDXL else _SD_FACTORS)
        rgb = torch.einsum("chw,cr->rhw", latents, factors)
        rgb = ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)
    else:
        rgb = latents[:3] if latents.shape[0] >= 3 else latents[:1].expand(3, -1, -1)
        low = rgb.amin(dim=(1, 2), keepdim=True)
        high = rgb.amax(dim=(1, 2), keepdim=True)
        rgb = (rgb - low) / (high - low).clamp_min(1e-6)
    pixels = (rgb * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(pixels, mode="RGB")


class LatentPreview:
    """Holds the running job's latest latents. The GPU worker writes (through the hook), any thread reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latents: torch.Tensor | None = None
        self._family = ""
        self._step = 0

    def _store(self, latents: torch.Tensor, family: str) -> None:
        with self._lock:
            self._latents = latents
            self._family = family
            self._step += 1

    def clear(self) -> None:
        with self._lock:
            self._latents = None
            self._step = 0

    @property
    def step(self) -> int:
        """How many UNet calls were observed in the current job (0: nothing to show yet)."""
        with self._lock:
            return self._step

    def image(self) -> Image.Image | None:
        """The current preview, or None before the first step (or after the job)."""
        with self._lock:
            latents, family = self._latents, self._family
        return None if latents is None else latents_to_rgb(latents, family)

    @contextlib.contextmanager
    def capture(self, unet: torch.nn.Module, family: str, latent_channels: int = 4) -> Iterator[None]:
        """Observe `unet`'s input while the block runs. The first row is the first image of the batch (with
        classifier-free guidance the batch holds the same latents twice); inpainting UNets get the mask and the
        masked image as extra channels, which are cut off."""

        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            sample = args[0] if args else kwargs.get("sample")
            if isinstance(sample, torch.Tensor) and sample.dim() == 4:
                self._store(sample[0, :latent_channels].detach().clone(), family)

        self.clear()
        handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()
            self.clear()
