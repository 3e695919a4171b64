"""What a generation returns: the images (already saved, with their infotext) and A1111's `info` fields."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webui.core.requests import GenerationRequest


@dataclass(frozen=True)
class GeneratedImage:
    """One image. `image` is a PIL image (typed loosely: core does not import PIL)."""

    image: Any
    seed: int
    infotext: str
    path: Path | None = None


@dataclass(frozen=True)
class GenerationResult:
    request: GenerationRequest
    images: tuple[GeneratedImage, ...]
    model_name: str = ""
    model_hash: str = ""
    vae_name: str | None = None  # the VAE file used, None for the checkpoint's own
    vae_hash: str | None = None
    inpainting_model: bool = False  # the checkpoint is an inpainting model (its UNet reads the mask)
    interrupted: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)
    job_timestamp: str = ""
    control_maps: tuple[Any, ...] = ()  # ControlNet detected maps (PIL images), one per enabled unit with a module

    @property
    def seeds(self) -> list[int]:
        return [img.seed for img in self.images]

    @property
    def infotexts(self) -> list[str]:
        return [img.infotext for img in self.images]
