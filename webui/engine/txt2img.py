"""Kept for imports written before the generation engine covered img2img: see `webui.engine.generation`."""
from __future__ import annotations

from webui.engine.generation import GenerationContext, ModelLabels, run_generation

__all__ = ["GenerationContext", "ModelLabels", "run_generation"]
