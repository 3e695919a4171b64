"""Which diffusers pipeline class serves a task, for the loaded model's family, as a view sharing its weights.

Why `from_pipe`: img2img, inpaint and hires passes need other pipeline classes, but never a second copy of the
weights; `from_pipe` builds a pipeline object around the same modules (tested: parameters are shared).
"""
from __future__ import annotations

from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)

# (is_sdxl, task) -> class; "txt2img" on an inpainting checkpoint uses the inpaint class with a full mask.
PIPELINE_CLASSES = {
    (False, "txt2img"): StableDiffusionPipeline,
    (False, "img2img"): StableDiffusionImg2ImgPipeline,
    (False, "inpaint"): StableDiffusionInpaintPipeline,
    (True, "txt2img"): StableDiffusionXLPipeline,
    (True, "img2img"): StableDiffusionXLImg2ImgPipeline,
    (True, "inpaint"): StableDiffusionXLInpaintPipeline,
}


def is_sdxl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def pipeline_for(pipe, task: str, is_inpaint_model: bool, **replace):
    """A pipeline for `task` sharing `pipe`'s modules (`replace` swaps components, e.g. the UNet for AND)."""
    if is_inpaint_model and task in ("txt2img", "img2img"):
        task = "inpaint"
    cls = PIPELINE_CLASSES[(is_sdxl(pipe), task)]
    if type(pipe) is cls and not replace:
        return pipe
    view = cls.from_pipe(pipe, **replace)
    view.set_progress_bar_config(disable=True)
    return view
