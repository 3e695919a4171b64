"""Training: the Train tab's way to the background worker (LoRA / LyCORIS jobs in child processes).

Why a service: it turns checked configs into queued jobs (refusing any that would replace files they did not
make), lists jobs and their events, compares a job's saved epochs with an X/Y/Z plot, and tells the device
arbiter which jobs run. The worker object is built with the app; it is started (jobs left running by a dead app
marked interrupted, queued ones launched) on the first use of training, as it always was, so an app whose users
never train never launches a training process and a test that never trains pays nothing.
"""
from __future__ import annotations

import dataclasses
import glob
import re
import shlex
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from webui.core.device_policy import RunningTraining
from webui.core.epoch_compare import plan_compare, saved_files
from webui.core.errors import ValidationError
from webui.core.path_policy import PathPolicy
from webui.core.settings import Paths
from webui.engine.models.registry import ModelRegistry
from webui.engine.networks.lora_library import LoraLibrary
from webui.jobs.device_arbiter import DeviceShare
from webui.jobs.executor import GpuExecutor
from webui.jobs.job_store import QUEUED, RESUMABLE_STATES, RUNNING, JobRecord
from webui.jobs.training_worker import TrainingWorker
from webui.services.generation_service import GenerationService
from webui.services.script_service import ScriptService
from webui.services.shown_paths import ShownPaths
from webui.services.training_forms import ImportedTrainingConfig, TrainingForms
from webui.training.config import TrainingConfig
from webui.training.samples import SamplePrompt, parse_prompt_text

# The numbered files a run saves beside `<name>.safetensors` (and prunes with "keep last K").
_NUMBERED_SUFFIX = re.compile(r"-(\d{6}|step\d{8})")
PREVIEW_THUMBNAIL_PX = 256


@dataclass(frozen=True)
class TrainingJob:
    """A training job as the Train tab shows it: the stored record, its command line and its result file as text
    (with data-relative paths when server folders are hidden: an exposed server does not reveal its file system)."""

    record: JobRecord
    command_text: str
    final_file_text: str = ""

    @property
    def config(self) -> dict[str, Any]:
        """The job's settings as stored (preset JSON); {} when unreadable."""
        return self.record.config_data

    @property
    def can_cancel(self) -> bool:
        """Queued or running: the Train tab shows Cancel only then."""
        return self.record.status in (QUEUED, RUNNING)

    @property
    def can_resume(self) -> bool:
        return self.record.status in RESUMABLE_STATES


@dataclass(frozen=True)
class TrainingNeighbours:
    """What training touches outside the worker: the LoRA library (a finished file appears at once), the registry
    (a job's base model), the device arbiter and the executor (a job starting on the generation device), and the
    services that compare epochs."""

    loras: LoraLibrary
    registry: ModelRegistry
    device_share: DeviceShare
    executor: GpuExecutor
    generation: GenerationService
    scripts: ScriptService


class TrainingService:
    """Training jobs: submit, cancel, resume, history, events; the form's conversions through `TrainingForms`."""

    def __init__(self, forms: TrainingForms, worker: TrainingWorker, policy: PathPolicy, paths: Paths,
                 neighbours: TrainingNeighbours):
        self._forms = forms
        self._worker = worker
        self._policy = policy
        self._paths = paths
        self._neighbours = neighbours
        self._started = False
        self._start_lock = threading.Lock()

    # ----- the worker -------------------------------------------------------------------------------------------
    def start(self) -> TrainingWorker:
        """Start the worker once (recovers interrupted jobs, starts queued ones); returns it."""
        with self._start_lock:
            if not self._started:
                self._started = True
                self._worker.start()
        return self._worker

    def running_jobs(self) -> list[RunningTraining]:
        """Jobs running now, for the device-sharing policy; the worker is not started just to ask."""
        if not self._started:
            return []
        running = []
        for record in self._worker.jobs():
            if record.status != "running":
                continue
            config = record.config_data
            running.append(RunningTraining(record.id, record.name, str(config.get("device") or "cpu"),
                                           record.step, record.total_steps, int(config.get("num_processes") or 1)))
        return running

    def job_changed(self, job_id: str) -> None:
        """A finished job's LoRA appears in Extra Networks at once; a job that starts on the generation device gets
        it to itself per the sharing policy (Settings > Training)."""
        record = self._worker.get(job_id)
        if record is not None and record.status == "done":
            self._neighbours.loras.refresh()
        if record is not None and record.status == "running":
            self._neighbours.device_share.training_changed(self._neighbours.executor.submit)

    # ----- the form ---------------------------------------------------------------------------------------------
    def defaults(self) -> dict[str, Any]:
        return self._forms.defaults()

    def choices(self) -> dict[str, list[str]]:
        return self._forms.choices()

    def form_config(self, values: dict[str, Any]) -> TrainingConfig:
        """Form values -> the checked config `submit` takes (see `TrainingForms.config`)."""
        return self._forms.config(values)

    def dataset_preview(self, values: dict[str, Any]) -> dict[str, Any]:
        return self._forms.dataset_preview(values)

    def dataset_preview_images(self, values: dict[str, Any], limit: int = 24) -> list[tuple[Any, str]]:
        """Thumbnails (PIL images, at most 256 px) of the dataset's first `limit` images with their captions: the
        dataset folder is not one the UI may serve files from, so the pictures travel as images."""
        shown = []
        for path, caption in self._forms.dataset_samples(values, limit):
            try:
                with Image.open(path) as image:
                    image.thumbnail((PREVIEW_THUMBNAIL_PX, PREVIEW_THUMBNAIL_PX))
                    shown.append((image.convert("RGB"), caption))
            except OSError as exc:  # a file the scan listed but PIL cannot read: say so in its caption
                shown.append((Image.new("RGB", (64, 64), "gray"), f"{path.name}: unreadable ({exc})"))
        return shown

    def preset_json(self, values: dict[str, Any]) -> str:
        return self._forms.preset_json(values)

    def import_config(self, text: str) -> ImportedTrainingConfig:
        return self._forms.import_config(text)

    # ----- jobs -------------------------------------------------------------------------------------------------
    def submit(self, config: TrainingConfig) -> TrainingJob:
        """Queue a job for a config from `form_config`. Refused when its files would replace files it did not make
        (see `_refuse_overwrite`)."""
        self._refuse_overwrite(config)
        return self._job(self.start().submit(config))

    def cancel(self, job_id: str) -> TrainingJob:
        """Cooperative cancel (resume state is saved), then SIGTERM/SIGKILL to the job's process group."""
        return self._job(self.start().cancel(job_id))

    def resume(self, job_id: str) -> TrainingJob:
        """Queue a cancelled/failed/interrupted job again; it continues from its last saved state."""
        return self._job(self.start().resume(job_id))

    def jobs(self, limit: int = 50) -> list[TrainingJob]:
        """Job history, newest first (survives app restarts)."""
        return [self._job(record) for record in self.start().jobs(limit)]

    def job(self, job_id: str) -> TrainingJob:
        record = self.start().get(job_id)
        if record is None:
            raise ValidationError(f"No training job with id '{job_id}'.")
        return self._job(record)

    def events(self, job_id: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Progress events (JSON dicts) from byte `offset` of the job's event file, and the next offset."""
        return self.start().events(job_id, offset)

    def losses(self, job_id: str) -> list[tuple[int, float]]:
        """(step, loss) for the loss plot."""
        return self.start().losses(job_id)

    def log(self, job_id: str) -> str:
        """The end of the job's console log (stdout/stderr of its process)."""
        return self.start().log_tail(job_id)

    def compare_epochs(self, job_id: str, prompt: str = "", weight: float = 1.0) -> Future:
        """"Compare epochs": an X/Y/Z plot (Prompt S/R over `<lora:name-00000N:w>`) of the job's saved files on its
        base model, with the job's first sample prompt (its size, seed, steps, CFG) unless `prompt` is given. The
        future yields the X/Y/Z `ScriptResult` (grid saved like any X/Y/Z grid)."""
        worker, loras = self.start(), self._neighbours.loras
        record = worker.get(job_id)
        if record is None:
            raise ValidationError(f"No training job with id '{job_id}'.")
        events = worker.events(job_id)[0]
        candidates = [Path(e["path"]) for e in events if e.get("type") == "saved"] + \
            ([Path(record.final_file)] if record.final_file else [])
        files = saved_files(events, record.final_file, [p for p in candidates if p.is_file()])
        loras.refresh()
        outside = [f.path.name for f in files if (entry := loras.find(f.name)) is None or entry.path != f.path]
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
        base = self._neighbours.registry.find_checkpoint(str(config["base_model"]))
        request = dataclasses.replace(
            self._neighbours.generation.default_request(), prompt=plan.prompt, negative_prompt=sample.negative,
            width=sample.width or size, height=sample.height or size, seed=sample.seed, steps=sample.steps,
            cfg_scale=sample.cfg_scale, checkpoint=base.title, save_images=False)
        return self._neighbours.scripts.submit_xyz_plot(request, [plan.x_axis])

    def _refuse_overwrite(self, config: TrainingConfig) -> None:
        """A run writes `<name>.safetensors`, `<name>.preview.png` and numbered `<name>-000001.safetensors` /
        `<name>-step00000010.safetensors` files into its output folder, and deletes older numbered ones ("keep last
        K"). If any of these exists already, or another unfinished job writes the same names, the job would
        replace or delete files it did not make: refuse before anything starts, naming what is in the way."""
        folder, name = Path(config.output_dir), config.output_name
        taken = [path.name for path in (folder / f"{name}.safetensors", folder / f"{name}.preview.png")
                 if path.exists()]
        taken += sorted(path.name for path in folder.glob(f"{glob.escape(name)}-*.safetensors")
                        if _NUMBERED_SUFFIX.fullmatch(path.stem[len(name):]))
        shown = self._policy.public_path(folder, (self._paths.lora_dir, self._paths.lycoris_dir))
        if taken:
            more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
            raise ValidationError(f"Output name '{name}' is taken: {', '.join(taken[:3])}{more} already in "
                                  f"{shown}. Choose another output name (training never replaces files it did "
                                  "not make).")
        for record in self.start().jobs(limit=100_000):
            other = record.config_data
            if record.status in (QUEUED, RUNNING, *RESUMABLE_STATES) and other.get("output_name") == name and \
                    Path(str(other.get("output_dir") or "")).resolve() == folder.resolve():
                raise ValidationError(f"Job {record.id} ({record.status}) writes '{name}' to {shown} too. Choose "
                                      "another output name, or resume that job.")

    def _job(self, record: JobRecord) -> TrainingJob:
        final = str(record.final_file) if record.final_file else ""
        if not self._policy.hide_dir_config:
            return TrainingJob(record, self._worker.command_text(record), final)
        shown = ShownPaths(self._policy, self._paths)
        args = [shown(Path(arg)) if Path(arg).is_absolute() else arg for arg in record.command_args]
        return TrainingJob(record, shlex.join(args), shown(Path(final)) if final else "")
