"""What a generation job calls around each step and each image, on behalf of the extensions.

Why plain callables: the engine knows nothing about extensions; the generation service builds these from the
extension registry (which guards every call), so the engine only calls them when they are set.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobHooks:
    """`on_step(steps_done)` counts the job's steps (first pass, then a hires pass); `after_image(image, index,
    seed, subseed) -> image` runs before an image is written; `infotext_fields(index)` adds infotext pairs."""

    on_step: Callable[[int], None] | None = None
    after_image: Callable[[Any, int, int, int], Any] | None = None
    infotext_fields: Callable[[int], dict[str, object]] | None = None
