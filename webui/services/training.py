"""Training on the services facade (issue 5): the Train tab's and the API's way to the background worker.

Why a separate part: training jobs live in child processes owned by a `TrainingWorker`; this part turns form
values into configs, lists jobs and their events, compares epochs, and tells the device-sharing policy which jobs
run. `Services` inherits these methods.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import re
from concurrent.futures import Future
from pathlib import Path, PurePosixPath
from typing import Any

from webui.core.device_sharing import RunningTraining
from webui.core.errors import ModelNotFoundError, ValidationError
from webui.core.path_policy import PathNotAllowedError

# The numbered files a run saves beside `<name>.safetensors` (and prunes with "keep last K").
_NUMBERED_SUFFIX = re.compile(r"-(\d{6}|step\d{8})")

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
        to models/Lora (LoRA) or models/LyCORIS unless the form names a folder, the device defaults to the app's.

        Every path in the form is a client's: it becomes an absolute path inside the data folder (or a folder
        allowed with --gradio-allowed-path; the base model may also be in the model folders), else the form is
        refused with a message. While server folders are hidden the output folder cannot be chosen and the base
        model must be a listed checkpoint."""
        from webui.training.config import config_from_json

        config, _ = config_from_json(values)
        paths = self.settings.paths
        if config.output_dir.strip():
            self.path_policy.refuse_if_hidden("The training output folder")
            output_dir = str(self.path_policy.with_roots((paths.lora_dir, paths.lycoris_dir)).resolve(
                config.output_dir, "Output folder"))
        else:
            output_dir = str(paths.lycoris_dir if config.is_lycoris else paths.lora_dir)
        device = values.get("device") or self.settings.device
        config = dataclasses.replace(self._confined_training_inputs(config),
                                     base_model=self._training_base_model(config.base_model),
                                     output_dir=output_dir, device=device)
        return config.validate()

    def _confined_training_inputs(self, config):
        """The dataset folders, the sample-prompt file and a resume folder as absolute paths the policy allows."""
        policy = self.path_policy

        def confined(value: str, what: str) -> str:
            return str(policy.resolve(value, what)) if value.strip() else value

        subsets = tuple(dataclasses.replace(s, path=confined(s.path, f"Dataset folder '{s.name or s.path}'"))
                        for s in config.subsets)
        resume = config.resume if config.resume in ("", "latest") else confined(config.resume, "Resume folder")
        return dataclasses.replace(config, dataset_dir=confined(config.dataset_dir, "Dataset folder"),
                                   subsets=subsets, sample_prompts=confined(config.sample_prompts,
                                                                            "Sample prompt file"),
                                   resume=resume)

    def _training_base_model(self, value: str) -> str:
        """A listed checkpoint (title, name, or a path ending like its file's), else a file or diffusers folder in
        the data folder, the model folders or an allowed folder (not while server folders are hidden)."""
        if not value.strip():
            return value
        listed = self._listed_checkpoint(value)
        if listed is not None:
            return str(listed.path)
        policy = self.path_policy
        if policy.hide_dir_config:
            raise PathNotAllowedError(f"Base model '{value}' is not a listed checkpoint; this server only trains "
                                      "on the listed checkpoints.")
        paths = self.settings.paths
        path = policy.with_roots((paths.models_dir, *paths.ckpt_dirs)).resolve(value, "Base model")
        if not path.exists():
            raise ValidationError(f"Base model '{value}' is neither a listed checkpoint nor a file in the data "
                                  "folder. Put it in models/Stable-diffusion and press refresh.")
        return str(path)

    def _listed_checkpoint(self, value: str):
        """The registry's checkpoint `value` names: by title or name, or by a path ending like its file's (a
        preset's `models/Stable-diffusion/x.safetensors` or `webui/assets/demo/...`); None when none does."""
        try:
            return self.registry.find_checkpoint(value)
        except ModelNotFoundError:
            pass
        parts = PurePosixPath(self.path_policy.check_text(value, "Base model")).parts
        return next((entry for entry in self.registry.checkpoints() if entry.path.parts[-len(parts):] == parts),
                    None)

    def submit_training(self, values: dict[str, Any]) -> dict[str, Any]:
        """Queue a training job; returns its job view (see `training_job`). Refused when its files would replace
        files it did not make (see `_refuse_overwrite`)."""
        config = self.training_config(values)
        self._refuse_overwrite(config)
        return self._training_view(self.training.submit(config))

    def _refuse_overwrite(self, config) -> None:
        """A run writes `<name>.safetensors`, `<name>.preview.png` and numbered `<name>-000001.safetensors` /
        `<name>-step00000010.safetensors` files into its output folder, and deletes older numbered ones ("keep last
        K"). If any of these exists already, or another unfinished job writes the same names, the job would
        replace or delete files it did not make: refuse before anything starts, naming what is in the way."""
        from webui.jobs.job_store import QUEUED, RESUMABLE_STATES, RUNNING

        folder, name = Path(config.output_dir), config.output_name
        taken = [path.name for path in (folder / f"{name}.safetensors", folder / f"{name}.preview.png")
                 if path.exists()]
        taken += sorted(path.name for path in folder.glob(f"{glob.escape(name)}-*.safetensors")
                        if _NUMBERED_SUFFIX.fullmatch(path.stem[len(name):]))
        shown = self.path_policy.public_path(folder, (self.settings.paths.lora_dir, self.settings.paths.lycoris_dir))
        if taken:
            more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
            raise ValidationError(f"Output name '{name}' is taken: {', '.join(taken[:3])}{more} already in "
                                  f"{shown}. Choose another output name (training never replaces files it did "
                                  "not make).")
        for record in self.training.jobs(limit=100_000):
            other = record.config_data
            if record.status in (QUEUED, RUNNING, *RESUMABLE_STATES) and other.get("output_name") == name and \
                    Path(str(other.get("output_dir") or "")).resolve() == folder.resolve():
                raise ValidationError(f"Job {record.id} ({record.status}) writes '{name}' to {shown} too. Choose "
                                      "another output name, or resume that job.")

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
        return preview(self._confined_training_inputs(config))

    def import_training_config(self, text: str) -> dict[str, Any]:
        """A preset or SimpleTuner config.json (its text, or a path to it) -> {"config": form values, "ignored":
        unknown keys, "notes": what is not applied here}. The file, and the files and folders it names, are
        client paths: relative to the data folder (or beside the file) and confined like every form path."""
        import json

        from webui.training.config import config_to_json
        from webui.training.config_files import load_config_data, load_config_file

        stripped = text.strip()
        policy = self.path_policy
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as err:
                raise ValidationError(f"The training config is not valid JSON: {err}") from err
            loaded = load_config_data(data, self.settings.paths.data_dir, self.settings.device, policy=policy)
        else:
            loaded = load_config_file(policy.resolve(stripped, "Training config file"), self.settings.device,
                                      policy=policy)
        form = config_to_json(loaded.config)
        try:
            listed = self._listed_checkpoint(form["base_model"]) if form.get("base_model") else None
        except ValidationError:  # an unusable path: the form shows it, and "Train" says what is wrong
            listed = None
        if listed is not None:  # the form's base model list shows titles
            form["base_model"] = listed.title
        return {"config": form, "ignored": list(loaded.ignored),
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
