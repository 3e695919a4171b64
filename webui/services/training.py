"""Training on the services facade (issue 5): the Train tab's and the API's way to the background worker.

Why a separate part: training jobs live in child processes owned by a `TrainingWorker`; this part turns form
values into configs, lists jobs and their events, compares epochs, and tells the device-sharing policy which jobs
run. `Services` inherits these methods.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from webui.core.device_sharing import RunningTraining
from webui.core.errors import ValidationError

log = logging.getLogger(__name__)


class TrainingServices:
    """Training jobs (mixed into `Services`)."""

    # LoRA / LyCORIS training jobs run in child processes owned by a `TrainingWorker` (webui/jobs/training_worker);
    # forms and presets travel as the preset JSON dict of `webui.training.config`. The worker is made on first use
    # (that also marks jobs left running by a dead app as interrupted); `start_training_worker` does it eagerly.
    @functools.cached_property
    def training(self):
        """The background training worker (job queue, cancel, resume, history in <data>/training/jobs.sqlite)."""
        import os

        from webui.jobs.job_store import JobStore
        from webui.jobs.training_worker import TrainingWorker, WorkerSettings

        data_dir = self.settings.paths.data_dir
        threads = self.settings.torch_threads or max(1, (os.cpu_count() or 2) // 2)
        worker = TrainingWorker(JobStore(data_dir / "training" / "jobs.sqlite"),
                                WorkerSettings.for_data_dir(data_dir, threads=threads),
                                on_change=self._training_changed)
        worker.start()
        return worker

    def start_training_worker(self) -> None:
        """Create the worker now (recovers interrupted jobs, starts queued ones)."""
        _ = self.training

    def _training_changed(self, job_id: str) -> None:
        """A finished job's LoRA appears in Extra Networks at once; a job that starts on the generation device gets
        it to itself per the sharing policy (Settings > Training)."""
        record = self.training.get(job_id)
        if record is not None and record.status == "done":
            self.loras.refresh()
        if record is not None and record.status == "running":
            self.device_share.training_changed(self.executor.submit)

    def _running_training(self) -> list[RunningTraining]:
        """Jobs running now, for the device-sharing policy; no worker is started just to ask."""
        if "training" not in self.__dict__:
            return []
        running = []
        for record in self.training.jobs():
            if record.status != "running":
                continue
            config = record.config_data
            running.append(RunningTraining(record.id, record.name, str(config.get("device") or "cpu"),
                                           record.step, record.total_steps, int(config.get("num_processes") or 1)))
        return running

    def training_defaults(self) -> dict[str, Any]:
        """The Train tab's initial form: every option with its default (preset JSON)."""
        from webui.training.config import TrainingConfig, config_to_json

        return config_to_json(TrainingConfig(device=self.settings.device))

    @staticmethod
    def training_choices() -> dict[str, list[str]]:
        """Dropdown values of the Train tab."""
        from webui.training import config as tc

        return {"network_type": list(tc.NETWORK_TYPES), "lycoris_algo": list(tc.LYCORIS_ALGOS),
                "optimizer": list(tc.OPTIMIZERS), "lr_scheduler": list(tc.SCHEDULERS),
                "mixed_precision": list(tc.MIXED_PRECISION), "model_family": list(tc.FAMILIES),
                "prediction_type": list(tc.PREDICTION_TYPES)}

    def training_config(self, values: dict[str, Any]):
        """Form/preset values -> a validated `TrainingConfig`: a checkpoint title becomes its file, the output goes
        to models/Lora (LoRA) or models/LyCORIS unless the form names a folder, the device defaults to the app's."""
        from webui.training.config import config_from_json

        config, _ = config_from_json(values)
        base = config.base_model
        if base and not Path(base).exists():
            base = str(self.registry.find_checkpoint(base).path)
        paths = self.settings.paths
        output_dir = config.output_dir or str(paths.lycoris_dir if config.is_lycoris else paths.lora_dir)
        device = values.get("device") or self.settings.device
        return dataclasses.replace(config, base_model=base, output_dir=output_dir, device=device).validate()

    def submit_training(self, values: dict[str, Any]) -> dict[str, Any]:
        """Queue a training job; returns its job view (see `training_job`)."""
        return self._training_view(self.training.submit(self.training_config(values)))

    def cancel_training(self, job_id: str) -> dict[str, Any]:
        """Cooperative cancel (resume state is saved), then SIGTERM/SIGKILL to the job's process group."""
        return self._training_view(self.training.cancel(job_id))

    def resume_training(self, job_id: str) -> dict[str, Any]:
        """Queue a cancelled/failed/interrupted job again; it continues from its last saved state."""
        return self._training_view(self.training.resume(job_id))

    def training_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Job history, newest first (survives app restarts)."""
        return [self._training_view(record) for record in self.training.jobs(limit)]

    def training_job(self, job_id: str) -> dict[str, Any]:
        record = self.training.get(job_id)
        if record is None:
            raise ValidationError(f"No training job with id '{job_id}'.")
        return self._training_view(record)

    def training_events(self, job_id: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Progress events (JSON dicts) from byte `offset` of the job's event file, and the next offset."""
        return self.training.events(job_id, offset)

    def training_losses(self, job_id: str) -> list[tuple[int, float]]:
        """(step, loss) for the loss plot."""
        return self.training.losses(job_id)

    def training_log(self, job_id: str) -> str:
        """The end of the job's console log (stdout/stderr of its process)."""
        return self.training.log_tail(job_id)

    def training_dataset_preview(self, values: dict[str, Any]) -> dict[str, Any]:
        """Images per folder, repeats, steps per epoch and in total, caption samples, buckets, notes."""
        from webui.training.config import config_from_json
        from webui.training.dataset import preview

        config, _ = config_from_json({**values, "base_model": values.get("base_model") or "-"})
        return preview(config)

    def import_training_config(self, text: str) -> dict[str, Any]:
        """A preset or SimpleTuner config.json (its text, or a path to it) -> {"config": form values, "ignored":
        unknown keys, "notes": what is not applied here}."""
        import json

        from webui.training.config import config_to_json
        from webui.training.config_files import load_config_data, load_config_file

        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                loaded = load_config_data(json.loads(stripped), Path.cwd(), self.settings.device)
            except json.JSONDecodeError as err:
                raise ValidationError(f"The training config is not valid JSON: {err}") from err
        else:
            loaded = load_config_file(Path(stripped), self.settings.device)
        return {"config": config_to_json(loaded.config), "ignored": list(loaded.ignored),
                "notes": list(loaded.notes), "format": loaded.source_format}

    def training_preset_json(self, values: dict[str, Any]) -> str:
        """The whole form as a preset JSON text (for "save preset")."""
        import json

        from webui.training.config import config_from_json, config_to_json

        return json.dumps(config_to_json(config_from_json(values)[0]), indent=2)

    def compare_training_epochs(self, job_id: str, prompt: str = "", weight: float = 1.0) -> Future:
        """"Compare epochs": an X/Y/Z plot (Prompt S/R over `<lora:name-00000N:w>`) of the job's saved files on its
        base model, with the job's first sample prompt (its size, seed, steps, CFG) unless `prompt` is given. The
        future yields the X/Y/Z `ScriptResult` (grid saved like any X/Y/Z grid)."""
        from webui.core.epoch_compare import plan_compare, saved_files
        from webui.training.samples import SamplePrompt, parse_prompt_text

        record = self.training.get(job_id)
        if record is None:
            raise ValidationError(f"No training job with id '{job_id}'.")
        events = self.training.events(job_id)[0]
        candidates = [Path(e["path"]) for e in events if e.get("type") == "saved"] + \
            ([Path(record.final_file)] if record.final_file else [])
        files = saved_files(events, record.final_file, [p for p in candidates if p.is_file()])
        self.loras.refresh()
        outside = [f.path.name for f in files if (entry := self.loras.find(f.name)) is None or entry.path != f.path]
        if outside:
            raise ValidationError(f"{', '.join(outside)} are not in models/Lora or models/LyCORIS (or another file "
                                  f"there has the same name), so a prompt cannot load them; move them there to "
                                  f"compare.")
        config = record.config_data
        samples = parse_prompt_text(str(config.get("sample_prompt_text") or ""))
        sample = samples[0] if samples else SamplePrompt(prompt=str(config.get("output_name") or ""),
                                                         seed=int(config.get("seed") or 0))
        plan = plan_compare(files, prompt or sample.prompt, weight)
        size = int(config.get("resolution") or 512)
        base = self.registry.find_checkpoint(str(config["base_model"]))
        request = dataclasses.replace(
            self.default_request(), prompt=plan.prompt, negative_prompt=sample.negative,
            width=sample.width or size, height=sample.height or size, seed=sample.seed, steps=sample.steps,
            cfg_scale=sample.cfg_scale, checkpoint=base.title, save_images=False)
        return self.submit_xyz_plot(request, [plan.x_axis])

    def _training_view(self, record) -> dict[str, Any]:
        view = record.as_dict()
        view["config"] = record.config_data
        view["command_text"] = self.training.command_text(record)
        return view
