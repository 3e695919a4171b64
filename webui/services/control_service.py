"""ControlNet for the UI and the API: model and module lists, the detected-map preview, `/controlnet/detect`.

Why a service of its own: the generation path takes the units as part of the request (the engine's
`ControlEngine` runs them inside the generation job), so what is left is listing and detection, which the
txt2img/img2img ControlNet sections and the extension's routes share. Detection runs on the GPU executor, behind
generations, because annotators may use the device.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from webui.core.control import NO_MODEL, ControlUnit
from webui.core.control_modules import module_detail, module_list
from webui.core.errors import ModelLoadError, ValidationError
from webui.core.limits import LIMITS
from webui.core.progress import CancelToken, ProgressTracker
from webui.engine.control.engine import ControlEngine
from webui.engine.control.images import fit_map
from webui.engine.runtime.pipeline_manager import PipelineManager
from webui.jobs.inline_executor import JobRunner

# The extension's API version (`GET /controlnet/version`); clients check it is at least 2.
API_VERSION = 2


class ControlService:
    """ControlNet lists and detection; `manager` tells the loaded checkpoint's family for the model filter."""

    def __init__(self, engine: ControlEngine, manager: PipelineManager, executor: JobRunner):
        self._engine = engine
        self._manager = manager
        self._executor = executor

    @staticmethod
    def version() -> int:
        return API_VERSION

    def model_list(self) -> list[str]:
        """Every ControlNet on disk as "name [hash]" (rescanned: the extension lists what is there now)."""
        return self._engine.library.model_list()

    def models_for_checkpoint(self) -> list[str]:
        """"None" and the models that fit the loaded checkpoint's family (all of them when none is loaded yet),
        for the unit's model dropdown."""
        entries = self._engine.library.refresh()
        active = self._manager.active
        if active is None:
            return [NO_MODEL, *(entry.title for entry in entries)]
        titles = [NO_MODEL]
        for entry in entries:
            try:
                facts = self._engine.library.facts(entry)
            except ModelLoadError:
                continue
            if facts.family == active.loaded.family:
                titles.append(entry.title)
        return titles

    @staticmethod
    def module_list(alias_names: bool = False) -> list[str]:
        return module_list(alias_names)

    @staticmethod
    def module_detail(alias_names: bool = False) -> dict[str, dict]:
        return module_detail(alias_names)

    def submit_detect(self, unit: ControlUnit, images: list[Any], masks: list[Any | None] | None = None,
                      target: tuple[int, int] | None = None) -> Future:
        """The detected map of each image for the unit's module, processor resolution and thresholds (pixel perfect
        follows `target`, the generation size). The future yields a list of PIL images."""
        if not images:
            raise ValidationError("No image was sent to detect a control map from.")
        if len(images) > LIMITS.max_input_images:
            raise ValidationError(f"{len(images)} images were sent; at most {LIMITS.max_input_images} are accepted.")
        masks = list(masks or [None] * len(images))

        def job(token: CancelToken, progress: ProgressTracker) -> list[Any]:
            progress.start("controlnet detect", 1, len(images))
            return [self._engine.detect_map(unit, image, target, mask)
                    for image, mask in zip(images, masks, strict=True)]

        return self._executor.submit(job, label="controlnet-detect")

    def preview(self, unit: ControlUnit, image: Any, target: tuple[int, int] | None = None,
                mask: Any | None = None) -> Any:
        """The UI's preview button: one detected map, fitted to `target` with the unit's resize mode when given."""
        (detected,) = self.submit_detect(unit, [image], [mask], target).result()
        return detected if target is None else fit_map(detected, target, unit.resize_mode)

    def refresh(self) -> list[str]:
        return [entry.title for entry in self._engine.library.refresh()]
