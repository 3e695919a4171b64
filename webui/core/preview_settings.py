"""A1111's live-preview settings (`live_previews_enable`, `show_progress_every_n_steps`, `show_progress_type`) as
one frozen value the engine reads at the start of each job.

Why a value: the GPU worker must not look options up at every step, and a settings change applies from the next
job on, as in A1111.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FULL = "Full"
APPROX_NN = "Approx NN"
APPROX_CHEAP = "Approx cheap"
TAESD = "TAESD"
# A1111's Approx NN needs its own weights file (models/VAE-approx/model.pt, not shipped); it reads as Approx cheap.
_DECODERS = {FULL: "full", TAESD: "taesd", APPROX_CHEAP: "approx", APPROX_NN: "approx"}


@dataclass(frozen=True)
class PreviewSettings:
    """`every_n_steps` > 0: a new preview at the first UNet step and every N; 0 or -1: none while sampling
    (A1111's -1 shows the image once it is done, which the gallery does anyway)."""

    enabled: bool = True
    every_n_steps: int = 10
    method: str = APPROX_CHEAP

    @property
    def decoder(self) -> str:
        """"approx", "taesd" or "full"."""
        return _DECODERS.get(self.method, "approx")

    def due(self, step: int) -> bool:
        """Whether UNet step `step` (1-based) makes a new preview: the first (so something shows at once), then
        every N."""
        return self.enabled and self.every_n_steps > 0 and (step == 1 or step % self.every_n_steps == 0)


def preview_settings(get: Callable[[str], Any]) -> PreviewSettings:
    """The settings from an options getter (`Options.get`)."""
    return PreviewSettings(enabled=bool(get("live_previews_enable")),
                           every_n_steps=int(get("show_progress_every_n_steps")),
                           method=str(get("show_progress_type")))
