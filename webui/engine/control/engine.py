"""The ControlNet side of a job: which units run, their models (checked against the loaded checkpoint's family),
their maps, and where the models sit during sampling (`--medvram`/`--lowvram` offload them like the pipeline).

Why one object: the generation service builds a `ControlRun` from the resolved request and the active model
before sampling and hands it to `run_generation`; the preview button and `/controlnet/detect` use the same
detection. Everything here runs on the executor's worker thread.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
from PIL import Image

from webui.core.control import NO_MODULE, ControlUnit
from webui.core.control_modules import pixel_perfect_resolution, preprocessor_spec
from webui.core.errors import ValidationError
from webui.core.requests import GenerationRequest
from webui.engine.control.control_lora import ControlBase, module_weights
from webui.engine.control.library import ControlNetLibrary
from webui.engine.control.loading import check_family, family_name
from webui.engine.control.plan import ControlRun, PreparedUnit
from webui.engine.control.preprocessors import AnnotatorCache, detect
from webui.engine.runtime.memory import MODEL_OFFLOAD, SEQUENTIAL_OFFLOAD, MemoryOptimizer

log = logging.getLogger(__name__)


class ControlEngine:
    """The ControlNet library, the annotator cache and the device policy for ControlNet models."""

    def __init__(self, library: ControlNetLibrary, annotators_dir: Path, memory: MemoryOptimizer):
        self.library = library
        self.annotators_dir = annotators_dir
        self.annotators = AnnotatorCache()
        self.memory = memory

    def detect_map(self, unit: ControlUnit, image: Image.Image, target: tuple[int, int] | None,
                   mask: Image.Image | None = None, seed: int = 0) -> Image.Image:
        """The unit's detected map of `image` (pixel perfect: the processor resolution follows `target`)."""
        resolution = unit.processor_res
        if unit.pixel_perfect and target is not None:
            resolution = pixel_perfect_resolution(image.size, target, unit.resize_mode)
        return detect(unit.module or NO_MODULE, image, resolution, unit.threshold_a, unit.threshold_b,
                      self.annotators_dir, mask, cache=self.annotators, device=str(self.memory.device), seed=seed)

    def prepare(self, request: GenerationRequest, pipe, family: str, checkpoint: str,
                originals: Callable[[], Mapping[int, torch.Tensor]] = dict) -> ControlRun | None:
        """A `ControlRun` for the request's enabled units, or None when there are none. Wrong-family models,
        missing models and units without an image fail here, before any sampling. `originals` gives the
        checkpoint's weights where LoRAs changed them (`AdapterSet.originals`; ControlNet-LoRAs are built on
        those)."""
        units = [unit for unit in request.control_units if unit.enabled]
        if not units:
            return None
        if getattr(pipe, "unet", None) is None:  # AuraFlow, Flux: transformers, no UNet to control
            raise ValidationError(f"ControlNet units work with SD 1.x, SD 2.x and SDXL checkpoints; the loaded "
                                  f"'{checkpoint}' is {family_name(family)}. Disable the units or load another model.")
        free = [preprocessor_spec(unit.module).model_free for unit in units]  # the reference modules
        entries = [None if model_free else self.library.find(unit.model)
                   for unit, model_free in zip(units, free, strict=True)]
        for entry in entries:
            if entry is not None:
                check_family(self.library.facts(entry), entry.title, family, pipe.unet, checkpoint)
        dtype = next(pipe.unet.parameters()).dtype
        base = ControlBase(pipe.unet, checkpoint, lambda: module_weights(pipe.unet, originals()),
                           int(getattr(pipe, "vae_scale_factor", 8)))
        size = (request.width, request.height)
        prepared = []
        for index, (unit, entry) in enumerate(zip(units, entries, strict=True)):
            image, mask = _unit_image(unit, request, index)
            model = None if entry is None else self.library.load(
                entry, base, dtype, keep=tuple(e for e in entries if e is not None))
            detected = self.detect_map(unit, image, size, mask, seed=max(request.seed, 0))
            prepared.append(PreparedUnit(unit, entry, model, detected))
        return ControlRun(prepared, size, max(request.seed, 0))

    @staticmethod
    def run_for(engine: ControlEngine | None, request: GenerationRequest, active) -> ControlRun | None:
        """The job's `ControlRun` on the active model (`ActiveModel`), or None without enabled units."""
        if not any(unit.enabled for unit in request.control_units):
            return None
        if engine is None:
            raise ValidationError("ControlNet units were sent, but ControlNet is not available in this set-up.")
        return engine.prepare(request, active.pipeline, active.loaded.family, active.entry.title,
                              active.adapters.originals)

    @staticmethod
    def placed_for(engine: ControlEngine | None, run: ControlRun | None, family: str):
        return engine.placed(run, family) if engine is not None and run is not None else contextlib.nullcontext()

    @staticmethod
    def finish(run: ControlRun | None, sink: Callable[[Image.Image, int, str], object] | None,
               seed: int) -> list[Image.Image]:
        """The job's detected maps; saved through `sink` (next to the images) when given."""
        if run is None:
            return []
        maps = run.detected_maps()
        if sink is not None:
            modules = [u.unit.module for u in run.units if u.unit.module != NO_MODULE]
            for image, module in zip(maps, modules, strict=True):
                sink(image, seed, f"ControlNet detected map ({module})")
        return maps

    @contextlib.contextmanager
    def placed(self, run: ControlRun | None, family: str) -> Iterator[None]:
        """The units' models on the device for the job, as the memory flags place the pipeline: ControlNets
        streamed layer by layer under `--lowvram`, on the device only during the job under `--medvram` (and the
        small T2I-Adapters under both), else kept there."""
        if run is None:
            yield
            return
        actions = self.memory.plan(family).actions
        streamed = run.net if SEQUENTIAL_OFFLOAD in actions else None
        resident = [model for model in run.models() if model is not streamed]
        if streamed is not None:
            from accelerate import cpu_offload

            streamed.to("cpu")
            cpu_offload(streamed, execution_device=self.memory.device)
        for model in resident:
            _move(model, self.memory.device)
        try:
            yield
        finally:
            if streamed is not None:
                from accelerate.hooks import remove_hook_from_module

                remove_hook_from_module(streamed, recurse=True)
            if MODEL_OFFLOAD in actions or SEQUENTIAL_OFFLOAD in actions:
                for model in resident:
                    _move(model, torch.device("cpu"))


def _move(net: torch.nn.Module, device: torch.device) -> None:
    """Move only when needed (diffusers' `to` logs a dtype warning on every call)."""
    if any(param.device != device for param in net.parameters()):
        torch.nn.Module.to(net, device)


def _unit_image(unit: ControlUnit, request: GenerationRequest, index: int) -> tuple[Image.Image, Image.Image | None]:
    """The unit's own image and mask, else img2img's input image and mask (the extension's behaviour)."""
    if unit.image is not None:
        return unit.image, unit.mask
    if request.img2img is not None and request.img2img.init_images:
        return request.img2img.init_images[0], unit.mask if unit.mask is not None else request.img2img.mask
    raise ValidationError(f"ControlNet unit {index} has no control image: upload one, or use it in img2img, "
                          "where it takes the input image.")
