"""Live previews while sampling: the latest latents of the running job, decoded cheaply on request.

Why a UNet pre-hook: the latents the UNet is about to denoise are exactly the current state of the image, and a
torch forward pre-hook observes them without touching the sampling code (it works for every pipeline view, the
hires pass and the composable UNet wrapper, which all call the same UNet module). The hook only keeps a
reference-sized copy of the first image's latents; decoding happens in the thread that asks (the API's
`progress`), never on the GPU worker, so previews cost the sampler nothing measurable.

Decoding is A1111's "Approx cheap": a fixed linear map from the 4 latent channels to RGB (factors fitted for the
SD and SDXL VAEs, published in the diffusers forum thread "decoding latents to RGB without upscaling"), so no
VAE pass is needed. Other latent layouts fall back to a per-channel normalisation of the first three channels.

A1111's settings choose how often and how (`core/preview_settings.py`, read once per job): every N steps (and at
the first, so a preview shows early), by Approx cheap (decoded lazily by the reader, as above), TAESD or the full
VAE (`preview_decoders.py`; these run in the hook, on the worker, only on the steps that make a preview, as in
A1111). A decoder that fails falls back to Approx cheap for the rest of the job, with one log line.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import torch
from PIL import Image

from webui.core.preview_settings import PreviewSettings
from webui.engine.generation.preview_decoders import TaesdLibrary, vae_decode
from webui.engine.models.detection import SDXL

log = logging.getLogger(__name__)

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

    def __init__(self, settings: Callable[[], PreviewSettings] | None = None, taesd: TaesdLibrary | None = None):
        self._lock = threading.Lock()
        self._latents: torch.Tensor | None = None
        self._decoded: Image.Image | None = None
        self._family = ""
        self._step = 0
        self._settings = settings or PreviewSettings
        self._taesd = taesd

    def _store(self, latents: torch.Tensor, family: str, decoded: Image.Image | None = None) -> None:
        with self._lock:
            self._latents = latents
            self._decoded = decoded
            self._family = family

    def _count(self) -> int:
        with self._lock:
            self._step += 1
            return self._step

    def clear(self) -> None:
        with self._lock:
            self._latents = None
            self._decoded = None
            self._step = 0

    @property
    def step(self) -> int:
        """How many UNet calls were observed in the current job (0: nothing to show yet)."""
        with self._lock:
            return self._step

    def image(self) -> Image.Image | None:
        """The current preview, or None before the first step (or after the job)."""
        with self._lock:
            latents, family, decoded = self._latents, self._family, self._decoded
        if decoded is not None:
            return decoded
        return None if latents is None else latents_to_rgb(latents, family)

    def _decoder(self, settings: PreviewSettings, family: str,
                 vae: torch.nn.Module | None) -> Callable[[torch.Tensor], Image.Image | None] | None:
        """The job's decoder for TAESD / Full (None: Approx cheap, decoded lazily by `image`)."""
        if settings.decoder == "taesd" and self._taesd is not None and self._taesd.file_for(family) is not None:
            taesd = self._taesd
            return lambda latents: taesd.decode(family, latents)
        if settings.decoder == "full" and vae is not None:
            return lambda latents: vae_decode(vae, latents)
        return None

    @staticmethod
    def _decode(decoders: list, latents: torch.Tensor) -> Image.Image | None:
        """TAESD / Full for this step; on any failure, Approx cheap for the rest of the job (a preview must never
        fail a generation: decoders raise many kinds of errors, from a bad file to device memory)."""
        decoder = decoders[0]
        if decoder is None:
            return None
        try:
            return decoder(latents)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("Live preview decoder failed (%s); showing Approx cheap previews for this job.", exc)
            decoders[0] = None
            return None

    @contextlib.contextmanager
    def capture(self, unet: torch.nn.Module, family: str, latent_channels: int = 4,
                vae: torch.nn.Module | None = None) -> Iterator[None]:
        """Observe `unet`'s input while the block runs. The first row is the first image of the batch (with
        classifier-free guidance the batch holds the same latents twice); inpainting UNets get the mask and the
        masked image as extra channels, which are cut off. `vae` is the model's VAE, for the "Full" method."""
        settings = self._settings()
        decoders = [self._decoder(settings, family, vae)]

        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            sample = args[0] if args else kwargs.get("sample")
            if not (isinstance(sample, torch.Tensor) and sample.dim() == 4):
                return
            step = self._count()
            if not settings.due(step):
                return
            latents = sample[0, :latent_channels].detach().clone()
            self._store(latents, family, self._decode(decoders, latents))

        self.clear()
        handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()
            self.clear()
