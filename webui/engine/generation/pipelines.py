"""Which diffusers pipeline class serves a task, for the loaded model's family, as a view sharing its weights.

Why a view: img2img, inpaint and hires passes need other pipeline classes, but never a second copy of the
weights; `share_modules` builds a pipeline object around the same modules (tested: parameters are shared).
Why not diffusers' `from_pipe` itself: it ends with `pipeline.to(dtype=...)`, float32 when no dtype is given, and the
modules are shared, so the first img2img or hires pass turned a float16 GPU model (or the CPU fast path's bfloat16
UNet) into float32 for good: twice the memory, slower steps. Mixed dtypes (float16 UNet with a float32
`--no-half-vae` VAE) have no single dtype to pass, so the view is built without any cast.
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
    return share_modules(cls, pipe, **replace)


def share_modules(cls, pipe, **replace):
    """A `cls` pipeline over `pipe`'s own modules (those `cls` takes; `replace` adds or swaps some, e.g. a
    ControlNet) and its config flags, with no dtype or device change (see the module docstring)."""
    expected, optional = cls._get_signature_keys(cls)
    components = pipe.components
    kwargs = {name: replace[name] if name in replace else components.get(name) for name in expected
              if name in replace or name in components}
    kwargs.update({name: pipe.config[name] for name in optional if name in pipe.config})
    view = cls(**kwargs)
    view.set_progress_bar_config(disable=True)
    return view
