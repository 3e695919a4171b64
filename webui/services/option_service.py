"""Settings (config.json) as the Settings tab, the quicksettings and A1111's /options see them.

Why a service: setting `sd_model_checkpoint` or `sd_vae` switches the model (queued, errors keep the old one),
memory options are re-applied to the loaded model, and output folders a client sets are confined by the path
policy; a plain store could do none of that.
"""
from __future__ import annotations

from typing import Any

from webui.core.options import Options, option_spec
from webui.core.path_policy import PathPolicy
from webui.core.progress import CancelToken, ProgressTracker
from webui.engine.runtime.pipeline_manager import PipelineManager
from webui.jobs.inline_executor import JobRunner
from webui.services.model_service import ModelService


class OptionsService:
    """Read and change options; model options go through the model service."""

    def __init__(self, options: Options, models: ModelService, manager: PipelineManager, executor: JobRunner,
                 policy: PathPolicy):
        self._options = options
        self._models = models
        self._manager = manager
        self._executor = executor
        self._policy = policy

    def get(self, key: str) -> Any:
        """One option's value (its default when not set)."""
        return self._options.get(key)

    def update(self, values: dict[str, Any], save: bool = True) -> list[str]:
        """Validate and store values (the UI's own widgets, whose values need no model switch or folder check);
        `save=False` keeps them in memory only. Returns the keys whose value changed."""
        return self._options.update(values, save=save)

    def get_options(self) -> dict[str, Any]:
        values = self._options.as_dict()
        values["sd_model_checkpoint"] = self._models.current_checkpoint() or values.get("sd_model_checkpoint")
        values["sd_vae"] = self._models.current_vae()
        return values

    def options_warning(self) -> str:
        """Why config.json could not be used at startup ("" when it could); the Settings tab shows it."""
        return self._options.load_warning

    def set_options(self, values: dict[str, Any]) -> None:
        """A1111's POST /options: model options switch the model (errors keep the old one), the rest persist."""
        values = dict(values)
        checkpoint = values.pop("sd_model_checkpoint", None)
        vae = values.pop("sd_vae", None)
        if values:
            self._check_client_folders(values)
            self._options.update(values)
            if {"vae_tiling", "vae_slicing"} & values.keys():
                self.reapply_memory_options()
        if checkpoint:
            self._models.select_checkpoint(str(checkpoint))
        if vae:
            self._models.select_vae(str(vae))

    def reapply_memory_options(self) -> None:
        """Apply changed VAE tiling/slicing options to the loaded model (queued behind running jobs)."""
        def job(token: CancelToken, progress: ProgressTracker) -> None:
            active = self._manager.active
            if active is not None:
                self._manager.memory.apply(active.pipeline, active.loaded.family)

        self._executor.run(job, label="memory-options")

    def _check_client_folders(self, values: dict[str, Any]) -> None:
        """Output folders (`outdir_*`) a client changes must stay inside the data folder (or an allowed one), and
        cannot be changed at all while server folders are hidden. A value equal to the stored one passes: A1111
        clients post every option back, including folders the owner set by hand in config.json."""
        for key, value in values.items():
            if not key.startswith("outdir_") or value is None or (isinstance(value, str) and not value.strip()):
                continue  # empty: the default folder
            current = self._options.get(key)
            if isinstance(value, str) and isinstance(current, str) and value.strip() == current.strip():
                continue
            spec = option_spec(key)
            what = f"{spec.label} ({key})" if spec is not None else key
            self._policy.refuse_if_hidden(what)
            self._policy.resolve(value, what)
