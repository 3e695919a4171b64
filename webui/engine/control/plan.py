"""One job's ControlNet units (and T2I-Adapter and reference units), ready to run: models loaded, maps detected
and fitted, and the pipeline views.

Why views: the ControlNet pipelines of diffusers are built around the loaded pipeline's own modules (the
UNet, VAE and text encoders are the same objects, never copies) with the units' models as one
`ModedMultiControlNet` (per-unit weight, guidance start/end and control mode). The generation code asks this
object for the view of a task (txt2img, img2img, inpaint) at a size; the hires pass asks again at its own size
and gets the same detected maps fitted to it.
"""
from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import (
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionXLControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
    T2IAdapter,
)
from PIL import Image

from webui.core.control import NO_MODEL, NO_MODULE, ControlUnit, infotext_entries
from webui.core.control_modules import preprocessor_spec
from webui.core.errors import GenerationError
from webui.engine.control.adapter_unet import AdapterInput, AdapterUNet, run_steps
from webui.engine.control.images import fit_map, map_tensor
from webui.engine.control.library import ControlNetEntry
from webui.engine.control.modes import ModedMultiControlNet
from webui.engine.control.reference import ReferenceInput, ReferenceUNet, style_fidelity
from webui.engine.generation.pipelines import pipeline_for, share_modules
from webui.engine.runtime.offload_store import execution_device

log = logging.getLogger(__name__)

# (is_sdxl, task) -> the ControlNet pipeline class; txt2img/img2img on an inpainting checkpoint use inpaint.
CONTROL_PIPELINES = {
    (False, "txt2img"): StableDiffusionControlNetPipeline,
    (False, "img2img"): StableDiffusionControlNetImg2ImgPipeline,
    (False, "inpaint"): StableDiffusionControlNetInpaintPipeline,
    (True, "txt2img"): StableDiffusionXLControlNetPipeline,
    (True, "img2img"): StableDiffusionXLControlNetImg2ImgPipeline,
    (True, "inpaint"): StableDiffusionXLControlNetInpaintPipeline,
}
# The argument that carries the control images: txt2img's `image` is the control image, the others have their own.
_CONTROL_ARGUMENT = {"txt2img": "image", "img2img": "control_image", "inpaint": "control_image"}


@functools.cache
def _list_maps(cls: type) -> type:
    """`cls` taking a list of control maps with inpaint "only masked". The views are built with `share_modules`
    (no dtype cast of the shared modules, see `webui/engine/generation/pipelines.py`)."""

    def check_inputs(self, *args, **kwargs):
        """Inpaint "only masked" (`padding_mask_crop`) is checked for one PIL control image; the units' maps are a
        list of PIL images, which `__call__` crops with the image all the same, so only that type check is
        skipped."""
        bound = inspect.signature(cls.check_inputs).bind(self, *args, **kwargs)
        if bound.arguments.get("padding_mask_crop") is not None and isinstance(bound.arguments.get("image"), list):
            bound.arguments["padding_mask_crop"] = None
        return cls.check_inputs(*bound.args, **bound.kwargs)

    return type(cls.__name__, (cls,), {"check_inputs": check_inputs, "__module__": cls.__module__})


def _reference_latents(pipe, image: Image.Image) -> torch.Tensor:
    """The reference image's latents as the UNet sees them (VAE mean, scaled)."""
    vae = pipe.vae
    pixels = map_tensor(image.convert("RGB"), execution_device(vae), vae.dtype) * 2 - 1
    with torch.inference_mode():
        latents = vae.encode(pixels).latent_dist.mean
    return (latents - (getattr(vae.config, "shift_factor", None) or 0.0)) * vae.config.scaling_factor


def _pixels(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Latent-filled inpainting input ("latent noise"/"latent nothing") as pixels in [-1, 1]: the ControlNet
    inpaint pipelines take no ready latents, so the filled latents go through the VAE and back."""
    with torch.inference_mode():
        return pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)


@dataclass
class PreparedUnit:
    """An enabled unit with its model and its detected map (before fitting to a size)."""

    unit: ControlUnit
    entry: ControlNetEntry | None  # None for the model-free reference modules
    model: torch.nn.Module | None
    detected: Image.Image
    fitted: dict[tuple[int, int], Image.Image] = field(default_factory=dict)

    def map_at(self, size: tuple[int, int]) -> Image.Image:
        if size not in self.fitted:
            self.fitted[size] = fit_map(self.detected, size, self.unit.resize_mode)
        return self.fitted[size]


class ControlRun:
    """The units of one job. `first_size` is the first pass's size (the maps shown and saved are at it)."""

    def __init__(self, units: list[PreparedUnit], first_size: tuple[int, int], seed: int = 0):
        self.units = units
        self.first_size = first_size
        self.seed = seed  # the reference modules' noise
        self.control_units = [u for u in units if u.model is not None and not isinstance(u.model, T2IAdapter)]
        self.adapter_units = [u for u in units if isinstance(u.model, T2IAdapter)]
        self.reference_units = [u for u in units if u.model is None]
        self.net = ModedMultiControlNet([u.model for u in self.control_units],
                                        [u.unit.control_mode for u in self.control_units]) \
            if self.control_units else None

    def models(self) -> list[torch.nn.Module]:
        """What must sit on the device during the job: the ControlNets (as one module) and the adapters."""
        return [*([self.net] if self.net is not None else []), *(u.model for u in self.adapter_units)]

    def detected_maps(self) -> list[Image.Image]:
        """The maps of units with a preprocessor (module "none" only repeats the input), at the first size."""
        return [u.map_at(self.first_size) for u in self.units if u.unit.module != NO_MODULE]

    def infotext_params(self) -> dict[str, str]:
        """`ControlNet N` entries, the model named by its title "name [hash]"."""
        return dict(infotext_entries([u.unit for u in self.units],
                                     [u.entry.title if u.entry is not None else NO_MODEL for u in self.units]))

    def view(self, pipe, task: str, is_inpaint_model: bool, cfg_scale: float, size: tuple[int, int],
             task_kwargs: dict[str, Any], **replace) -> tuple[Any, dict[str, Any]]:
        """The ControlNet pipeline for `task` on `pipe`'s modules and the call's arguments with the units added
        (arguments that pipeline class does not take are dropped, with a log line). T2I-Adapter and reference
        units work through stand-in UNets (`adapter_unet.py`, `reference.py`; both when both are used); without
        ControlNet units the view is the task's plain pipeline with that UNet."""
        device, dtype = execution_device(pipe.unet), pipe.unet.dtype
        holder: list[Any] = []  # the view, for the stand-in UNet to read its scheduler's steps when it runs
        if self.reference_units:  # reference modules: a stand-in UNet runs their write pass (see reference.py)
            replace["unet"] = ReferenceUNet(pipe.unet, [
                ReferenceInput(preprocessor_spec(u.unit.module).name, _reference_latents(pipe, u.map_at(size)),
                               float(u.unit.weight), float(u.unit.guidance_start), float(u.unit.guidance_end),
                               style_fidelity(u.unit.control_mode, float(u.unit.threshold_a)))
                for u in self.reference_units], lambda: holder[0].scheduler, lambda: run_steps(holder[0].scheduler),
                cfg_scale > 1.0, self.seed)
        if self.adapter_units:  # T2I-Adapters: a stand-in UNet adds their features (see adapter_unet.py)
            replace["unet"] = AdapterUNet(replace.get("unet", pipe.unet), [
                AdapterInput(u.model, map_tensor(u.map_at(size), device, dtype), float(u.unit.weight),
                             float(u.unit.guidance_start), float(u.unit.guidance_end), u.unit.control_mode)
                for u in self.adapter_units], lambda: run_steps(holder[0].scheduler), cfg_scale > 1.0)
        if self.net is None:
            view = pipeline_for(pipe, task, is_inpaint_model, **replace)
            holder.append(view)
            return view, task_kwargs
        if is_inpaint_model and task in ("txt2img", "img2img"):
            task = "inpaint"
        cls = CONTROL_PIPELINES[(getattr(pipe, "text_encoder_2", None) is not None, task)]
        view = share_modules(_list_maps(cls), pipe, controlnet=self.net, **replace)
        holder.append(view)
        view.set_progress_bar_config(disable=True)
        self.net.cfg_batch = cfg_scale > 1.0  # diffusers runs CFG as [uncond, cond] only above 1
        accepted = set(inspect.signature(cls.__call__).parameters)
        maps = [u.map_at(size) for u in self.control_units]
        if task_kwargs.get("padding_mask_crop") is not None:  # "only masked": the maps are cropped like the image
            if any(image.mode == "RGBA" for image in maps):
                raise GenerationError("The inpaint preprocessor cannot be combined with inpaint area 'Only masked' "
                                      "yet; use 'Whole picture'.")
            control = list(maps)  # PIL images: the pipeline crops them to the masked area
        else:
            control = [map_tensor(image, device, dtype) for image in maps]
        if "masked_image_latents" in task_kwargs and "masked_image_latents" not in accepted:
            task_kwargs = {**task_kwargs, "image": _pixels(pipe, task_kwargs["image"])}
        dropped = [name for name in task_kwargs if name not in accepted]
        if dropped:
            log.info("The ControlNet %s pipeline does not take %s; left out.", task, ", ".join(dropped))
        kwargs = {name: value for name, value in task_kwargs.items() if name in accepted}
        kwargs[_CONTROL_ARGUMENT[task]] = control
        units = self.control_units
        kwargs.update(controlnet_conditioning_scale=[float(u.unit.weight) for u in units],
                      control_guidance_start=[float(u.unit.guidance_start) for u in units],
                      control_guidance_end=[float(u.unit.guidance_end) for u in units], guess_mode=False)
        if task != "txt2img":
            kwargs.setdefault("width", size[0])
            kwargs.setdefault("height", size[1])
        return view, kwargs
