"""Generation tasks: every txt2img/img2img/Extras request from the UI or the API becomes a stored task with an id.

Why one door: the UI's Generate, the synchronous API routes and the queue API routes all enqueue here and (when
they want the result now) wait on the task's future, so there is one queue (the task store, run by the one GPU
executor), one order the user can change, and one record that survives a restart. A task holds the frozen request
as it was queued: editing makes a new request, never a changed task.

A plain generation is resolved (validated, seeds drawn, prompt parsed) when it is queued, so a bad value fails at
once and the stored request has its real seeds; a script is expanded when it runs (its cells fix their own seeds).
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from webui.core.progress import CancelToken, ProgressTracker
from webui.core.requests import GenerationRequest
from webui.core.resolve import ResolvedRequest
from webui.core.results import GenerationResult
from webui.core.script_spec import ScriptSpec
from webui.engine.upscale.postprocess import ExtrasRequest
from webui.jobs.device_arbiter import DeviceShare
from webui.jobs.inline_executor import InlineExecutor
from webui.jobs.job_store import JobRecord
from webui.jobs.task_queue import TaskOutcome, TaskQueue
from webui.jobs.task_store import FINISHED_STATES, PENDING_STATES, TaskRecord, TaskStore
from webui.services.generation_service import GenerationService
from webui.services.model_service import ModelService
from webui.services.script_service import ScriptService
from webui.services.task_payloads import (
    KIND_EXTRAS,
    KIND_IMG2IMG,
    KIND_TXT2IMG,
    ExtrasPayload,
    GenerationPayload,
    decode_payload,
    encode_payload,
    keep_extras,
    keep_images,
    rebuilt_result,
    result_fields,
)
from webui.services.upscale_service import UpscaleService


@dataclass(frozen=True)
class TaskHandle:
    """A queued task: its id and the future its result lands in (as the generation/script/upscale call would
    return it)."""

    id: str
    future: Future


@dataclass(frozen=True)
class TaskView:
    """A task as the Queue panel and `GET /sdapi/v1/queue` show it."""

    id: str
    kind: str
    state: str
    progress: float
    summary: str
    source: str
    position: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str
    images: tuple[str, ...]
    infotexts: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass(frozen=True)
class TaskUsing:
    """The services a task runs through, and what the Queue panel shows next to tasks."""

    generation: GenerationService
    scripts: ScriptService
    upscale: UpscaleService
    models: ModelService
    device_share: DeviceShare
    training_jobs: Callable[[], list[JobRecord]]


class TaskService:
    """Enqueue, list, steer and read back generation tasks."""

    def __init__(self, queue: TaskQueue, using: TaskUsing):
        self._queue = queue
        self._store: TaskStore = queue.store
        self._using = using
        self._resolved: dict[str, ResolvedRequest] = {}  # plain requests queued by this process, resolved once

    def start(self) -> list[str]:
        """Recover after a crash and run what is queued (called once by `build_services`)."""
        return self._queue.start(self._run)

    # ----- enqueue -------------------------------------------------------------------------------------------
    def submit_generation(self, request: GenerationRequest, script: ScriptSpec | None = None,
                          source: str = "ui") -> TaskHandle:
        """Queue txt2img (or img2img when `request.img2img` is set), with the script `script` over it."""
        script = script or ScriptSpec()
        task_id = self._store.new_id()
        if script.is_plain:
            resolved = self._using.generation.resolve(request)
            request = resolved.request
            self._resolved[task_id] = resolved
        else:
            request.validate()
        kind = KIND_IMG2IMG if request.img2img is not None else KIND_TXT2IMG
        try:
            data = encode_payload(GenerationPayload(request, script), self._store.folder(task_id))
            return TaskHandle(task_id, self._queue.enqueue(task_id, kind, data, _summary(request, script), source))
        except BaseException:
            self._resolved.pop(task_id, None)
            raise

    def submit_extras(self, images: list[Any], request: ExtrasRequest, save: bool = True,
                      source: str = "ui") -> TaskHandle:
        """Queue an Extras upscale of `images`; the future yields [(image, path or None, parameters)]."""
        self._using.upscale.check_extras(images, request)
        task_id = self._store.new_id()
        data = encode_payload(ExtrasPayload(tuple(images), request, save), self._store.folder(task_id))
        summary = f"Extras: {len(images)} image(s), {request.upscaler_1}"
        return TaskHandle(task_id, self._queue.enqueue(task_id, KIND_EXTRAS, data, summary, source))

    # ----- read ----------------------------------------------------------------------------------------------
    def tasks(self, limit: int = 200) -> list[TaskView]:
        """Running and pending tasks in queue order, then finished ones, newest first."""
        return [self._view(record) for record in self._store.list(limit)]

    def task(self, task_id: str) -> TaskView | None:
        record = self._store.get(task_id)
        return self._view(record) if record is not None else None

    def generation_result(self, task_id: str) -> GenerationResult | None:
        """A finished txt2img/img2img task's result, read back from its row and files; None before it is done."""
        record = self._store.get(task_id)
        if record is None or record.state not in FINISHED_STATES or record.kind == KIND_EXTRAS:
            return None
        payload = decode_payload(record.kind, record.request_data, self._store.folder(task_id))
        return rebuilt_result(payload.request, record.result_data, record.image_paths)

    def extras_result(self, task_id: str) -> tuple[list[str], list[str]] | None:
        """A finished Extras task's (image paths, parameters texts); None before it is done."""
        record = self._store.get(task_id)
        if record is None or record.state not in FINISHED_STATES or record.kind != KIND_EXTRAS:
            return None
        return record.image_paths, [str(info) for info in record.result_data.get("infos", [])]

    def running_task_id(self) -> str | None:
        return self._queue.running_id

    # ----- steer ---------------------------------------------------------------------------------------------
    def cancel(self, task_id: str) -> bool:
        cancelled = self._queue.cancel(task_id)
        if cancelled:
            self._resolved.pop(task_id, None)
        return cancelled

    def pause(self, task_id: str) -> bool:
        return self._queue.pause(task_id)

    def resume(self, task_id: str) -> bool:
        return self._queue.resume(task_id)

    def move(self, task_id: str, offset: int) -> bool:
        return self._queue.move(task_id, offset)

    def pause_queue(self) -> None:
        self._queue.pause_queue()

    def resume_queue(self) -> None:
        self._queue.resume_queue()

    def queue_paused(self) -> bool:
        return self._queue.queue_paused

    def training_jobs(self, limit: int = 20) -> list[JobRecord]:
        return self._using.training_jobs()[:limit]

    def waits_for(self) -> str:
        """What waits for what right now: generation tasks and training jobs share the device by the
        `training_device_policy` setting (the device arbiter applies it around every task)."""
        plan = self._using.device_share.plan()
        pending = len(self._store.with_state(*PENDING_STATES))
        lines = []
        if self._queue.queue_paused:
            lines.append(f"The queue is paused: {pending} pending task(s) wait until it is resumed.")
        if plan.jobs:
            names = ", ".join(f"'{job.name}'" for job in plan.jobs)
            lines.append(f"Training {names} runs now: generation tasks wait until it ends (Settings > Training)."
                         if plan.wait else
                         f"Training {names} shares the device: tasks run, the generation model goes to RAM between "
                         "them." if plan.park else f"Training {names} runs beside generation tasks.")
        else:
            lines.append("No training job uses the device: tasks run one at a time, in the order listed.")
        return " ".join(lines)

    # ----- run -----------------------------------------------------------------------------------------------
    def _run(self, record: TaskRecord, token: CancelToken, progress: ProgressTracker) -> TaskOutcome:
        """Runs in the pump's executor job: the request generates inline, with the job's token and progress."""
        folder = self._store.folder(record.id)
        resolved = self._resolved.pop(record.id, None)
        payload = decode_payload(record.kind, record.request_data, folder)
        inline = InlineExecutor(token, progress)
        if isinstance(payload, ExtrasPayload):
            rows = self._using.upscale.with_executor(inline).submit_extras(
                list(payload.images), payload.request, save=payload.save).result()
            return TaskOutcome(rows, keep_extras(rows, folder), {"infos": [info for _, _, info in rows]},
                               cancelled=token.interrupted)
        value = self._generate(payload, resolved, inline)
        result = value if isinstance(value, GenerationResult) else GenerationResult(
            request=payload.request, images=tuple(value.images), interrupted=value.interrupted,
            model_name=self._using.models.current_checkpoint() or "", warnings=tuple(value.warnings))
        return TaskOutcome(value, keep_images(result.images, folder), result_fields(result))

    def _generate(self, payload: GenerationPayload, resolved: ResolvedRequest | None, inline: InlineExecutor) -> Any:
        if not payload.script.is_plain:
            return self._using.scripts.with_executor(inline).submit(payload.request, payload.script).result()
        generation = self._using.generation.with_executor(inline)
        if resolved is not None:
            return generation.submit_resolved(resolved).result()
        return generation.submit_txt2img(payload.request).result()

    def _view(self, record: TaskRecord) -> TaskView:
        infotexts = record.result_data.get("infotexts") or record.result_data.get("infos") or []
        return TaskView(id=record.id, kind=record.kind, state=record.state,
                        progress=self._queue.progress(record), summary=record.summary, source=record.source,
                        position=record.position, created_at=record.created_at, started_at=record.started_at,
                        finished_at=record.finished_at, error=record.error, images=tuple(record.image_paths),
                        infotexts=tuple(str(text) for text in infotexts))


def _summary(request: GenerationRequest, script: ScriptSpec) -> str:
    """One line of the request's main parameters, for the Queue panel and the task list."""
    prompt = request.prompt if len(request.prompt) <= 80 else request.prompt[:77] + "..."
    parts = [f"\u201c{prompt}\u201d", f"{request.width}x{request.height}", f"{request.steps} steps",
             request.sampler_name, f"CFG {request.cfg_scale:g}", f"seed {request.seed}"]
    if request.total_images > 1:
        parts.append(f"{request.batch_size}x{request.n_iter} images")
    if request.img2img is not None:
        parts.append(f"img2img, denoising {request.denoising_strength:g}")
    if not script.is_plain:
        parts.append(script.name)
    return " \u00b7 ".join(parts)

