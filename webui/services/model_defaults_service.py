"""Defaults that fit the selected model: its native size (for the UI's width/height and hires hints), the demo
note, and a line naming the device generation runs on with, on a CPU, what an image costs.

Why a service of its own: the UI asks these whenever a checkpoint is chosen or a page opens; the sizes come from
one table (`webui.core.native_sizes`) and the model's facts from the loaded checkpoint (family, v-prediction) or,
before anything is loaded, from the file's tensor names (a header read, no weights).
"""
from __future__ import annotations

import logging

from webui.core.errors import WebUIError
from webui.core.native_sizes import NativeSize, device_note, native_size
from webui.core.options import Options
from webui.engine.families.spec import variant_of
from webui.engine.models.detection import detect_kind_from_keys
from webui.engine.models.loader import diffusers_folder_family
from webui.engine.models.registry import ModelEntry, ModelRegistry
from webui.engine.models.safetensors_header import header_shapes
from webui.engine.models.yaml_hints import read_yaml_hints
from webui.engine.runtime.device_info import describe_device
from webui.engine.runtime.pipeline_manager import PipelineManager

log = logging.getLogger(__name__)


class ModelDefaultsService:
    """Native sizes and device notes for the UI; reads the pipeline manager and the registry, changes nothing."""

    def __init__(self, registry: ModelRegistry, manager: PipelineManager, options: Options):
        self._registry = registry
        self._manager = manager
        self._options = options

    def native_size(self, title: str | None = None) -> NativeSize:
        """The native size of checkpoint `title` (None: the loaded one, else the one the start-up load picks)."""
        active = self._manager.active
        if active is not None and (title is None or title == active.entry.title):
            return native_size(active.loaded.family, active.loaded.prediction_type, demo=active.entry.builtin)
        entry = self._entry(title)
        if entry is None:
            return native_size(None)
        return native_size(*self._file_facts(entry), demo=entry.builtin)

    def family(self, title: str | None = None) -> tuple[str | None, str]:
        """(family, variant) of checkpoint `title` (None: the loaded one, else the one the start-up load picks):
        what the sampler list and the family-only sliders follow. The variant (Flux schnell) is known once loaded."""
        active = self._manager.active
        if active is not None and (title is None or title == active.entry.title):
            return active.loaded.family, variant_of(active.pipeline)
        entry = self._entry(title)
        return (self._file_facts(entry)[0], "") if entry is not None else (None, "")

    def shown_checkpoint(self) -> tuple[str | None, bool]:
        """(title, is it the demo model) of the loaded checkpoint, else of the one the start-up load picks: what
        a page opened while the start-up load still runs shows in its checkpoint list."""
        active = self._manager.active
        entry = active.entry if active is not None else self._entry(None)
        return (entry.title, entry.builtin) if entry is not None else (None, False)

    def demo_size(self) -> NativeSize:
        """The shipped demo model's size (named in the demo note)."""
        return native_size(None, demo=True)

    def device_note(self) -> str:
        """"Running on CPU (2 cores): ..." for the loaded (or about to load) model, and the number format the
        denoiser runs in (the CPU fast path's choice, shown as `cmd-flags` shows it)."""
        described = describe_device(self._manager.device.device)
        note = device_note(described.kind, described.name, described.threads, self.native_size())
        return f"{note} UNet/transformer in {self._manager.device.precision_note}."

    def _entry(self, title: str | None) -> ModelEntry | None:
        wanted = title or self._options.get("sd_model_checkpoint")
        if wanted:
            try:
                return self._registry.find_checkpoint(str(wanted))
            except WebUIError:
                pass
        listed = self._registry.checkpoints()
        return listed[0] if listed else None

    @staticmethod
    def _file_facts(entry: ModelEntry) -> tuple[str | None, str | None]:
        """(family, prediction type from a yaml beside it) without loading: a header read, or a folder's configs.
        A file we cannot read gives (None, None): the caller falls back to A1111's 512."""
        try:
            if entry.kind == "diffusers":
                return diffusers_folder_family(entry.path), None
            if entry.path.suffix != ".safetensors":
                return None, None
            family = detect_kind_from_keys(header_shapes(entry.path)).family
            return family, read_yaml_hints(entry.path).prediction_type
        except (WebUIError, OSError, ValueError) as exc:
            log.info("No native size for %s: %s", entry.title, exc)
            return None, None
