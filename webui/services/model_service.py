"""Checkpoints and VAEs: lists, the loaded model, switching (on the executor), the start-up load, memory.

Why a service of its own: every other part asks "which model is loaded" or "load that one", and loading must
queue behind running generations (it runs on the GPU executor like a generation).
"""
from __future__ import annotations

import logging
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from webui.core.errors import WebUIError
from webui.core.options import Options
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.settings import Settings
from webui.engine.models.registry import ModelRegistry
from webui.engine.runtime.devices import memory_stats
from webui.engine.runtime.pipeline_manager import VAE_AUTOMATIC, VAE_NONE, PipelineManager
from webui.jobs.inline_executor import JobRunner
from webui.services.shown_paths import ShownPaths

log = logging.getLogger(__name__)


class ModelService:
    """The model registry and the pipeline manager, seen from the UI and the API."""

    def __init__(self, settings: Settings, registry: ModelRegistry, manager: PipelineManager, executor: JobRunner,
                 options: Options, shown: ShownPaths):
        self._settings = settings
        self._registry = registry
        self._manager = manager
        self._executor = executor
        self._options = options
        self._shown = shown
        self._startup_message = ""

    def with_executor(self, executor: JobRunner) -> ModelService:
        """The same models, loading through `executor` (a script's inline executor, inside the script's job)."""
        return ModelService(self._settings, self._registry, self._manager, executor, self._options, self._shown)

    def precision_note(self) -> str:
        """The denoiser's number format on this device and why (the CPU fast path's choice, fp16 on CUDA)."""
        device = self._manager.device
        return f"{device.device.type}: {device.precision_note}"

    def checkpoint_titles(self) -> list[str]:
        return [entry.title for entry in self._registry.checkpoints()]

    def vae_titles(self) -> list[str]:
        return [VAE_AUTOMATIC, VAE_NONE, *(entry.title for entry in self._registry.vaes())]

    def refresh_models(self) -> None:
        self._registry.refresh()

    def current_checkpoint(self) -> str | None:
        active = self._manager.active
        return active.entry.title if active is not None else None

    def current_vae(self) -> str:
        return self._manager.vae_choice

    def is_demo_model(self, title: str | None) -> bool:
        if not title:
            return False
        return any(entry.builtin and entry.title == title for entry in self._registry.checkpoints())

    def select_checkpoint(self, title: str) -> str:
        """Load a checkpoint (queued behind running generations). Raises a `WebUIError` on failure; the
        previous model stays loaded."""
        def job(token: CancelToken, progress: ProgressTracker) -> str:
            progress.start(f"Loading {title}", 1, 1)
            return self._manager.ensure(title).entry.title

        loaded = self._executor.run(job, label="load-checkpoint")
        self._options.update({"sd_model_checkpoint": loaded})
        return loaded

    def select_vae(self, title: str) -> str:
        def job(token: CancelToken, progress: ProgressTracker) -> str:
            self._manager.set_vae(title)
            return self._manager.vae_choice

        chosen = self._executor.run(job, label="load-vae")
        self._options.update({"sd_vae": chosen})
        return chosen

    def sd_models(self) -> list[dict[str, Any]]:
        """A1111's /sdapi/v1/sd-models entries (hashes only where already known; never computed here)."""
        rows = []
        for entry in self._registry.checkpoints():
            short = self._manager.hashes.cached_model_hash(entry.path) if entry.kind != "diffusers" else None
            rows.append({
                "title": f"{entry.title} [{short}]" if short else entry.title,
                "model_name": entry.model_name,
                "hash": short,
                "sha256": None,
                "filename": self._shown(entry.path),
                "config": None,
            })
        return rows

    def sd_vaes(self) -> list[dict[str, Any]]:
        return [{"model_name": e.title, "filename": self._shown(e.path)} for e in self._registry.vaes()]

    def load_startup_model(self) -> Future:
        """Queue the start-up load: --ckpt, else the last used checkpoint, else the first listed. What went wrong
        stays in `startup_message` for the UI's start-up note."""
        wanted = self._settings.ckpt and str(self._settings.ckpt)
        if wanted and Path(wanted).is_file():
            self._registry.add_external_checkpoint(Path(wanted))
        wanted = wanted or self._options.get("sd_model_checkpoint")

        def job(token: CancelToken, progress: ProgressTracker) -> str | None:
            candidates = [wanted] if wanted else []
            candidates += [e.title for e in self._registry.checkpoints() if e.title != wanted]
            for title in candidates:
                try:
                    return self._manager.ensure(title, self._options.get("sd_vae")).entry.title
                except WebUIError as exc:
                    log.warning("Could not load %s at start: %s", title, exc)
                    self._startup_message = str(exc)
            return None

        return self._executor.submit(job, label="startup-load")

    def startup_message(self) -> str:
        """Why the start-up load failed for a checkpoint ("" when nothing failed)."""
        return self._startup_message

    def memory(self) -> dict[str, Any]:
        """RAM and GPU memory in A1111's /sdapi/v1/memory shape."""
        return memory_stats(self._manager.device.device)
