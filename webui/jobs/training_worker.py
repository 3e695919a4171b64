"""The training job queue: queue, start, watch, cancel, resume, and recover after an app restart.

Why one job at a time, and a monitor thread per child: a training run takes the whole device and its memory, and
the app must not block while it runs. Each job runs in a child process (`training_process.py`) that writes JSONL
events; a monitor thread here turns them into the job's state in SQLite, so the UI, the API and an app restarted
mid-run all read the same record.

Cancel is cooperative first (a stop file: the trainer saves resume state and exits), then SIGTERM, then SIGKILL
to the child's process group.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webui.core.errors import ValidationError
from webui.jobs.job_store import (
    CANCELLED,
    DONE,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RESUMABLE_STATES,
    RUNNING,
    JobRecord,
    JobStore,
)
from webui.jobs.training_process import (
    CONFIG_FILE,
    EVENTS_FILE,
    LOG_FILE,
    STOP_FILE,
    ChildProcess,
    absolute_paths,
    is_our_child,
    start_child,
    train_command,
)
from webui.training import events as ev
from webui.training.config import TrainingConfig, config_from_json, config_to_json
from webui.training.events import read_events

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class WorkerSettings:
    """Where jobs live and how children are started. `threads`: torch threads per child (explicit, so a job
    never takes every core of a machine the UI shares)."""

    data_dir: Path
    jobs_dir: Path
    python: str = sys.executable
    threads: int = 1
    cancel_grace_s: float = 20.0
    kill_grace_s: float = 10.0
    poll_s: float = 0.3

    @classmethod
    def for_data_dir(cls, data_dir: Path, **overrides: Any) -> WorkerSettings:
        return cls(data_dir=data_dir, jobs_dir=data_dir / "training" / "jobs", **overrides)


class TrainingWorker:
    """One training job at a time; the rest wait queued. Thread-safe; every state change goes to the store."""

    def __init__(self, store: JobStore, settings: WorkerSettings,
                 on_change: Callable[[str], None] | None = None):
        self.store = store
        self.settings = settings
        self.on_change = on_change
        self._lock = threading.RLock()
        self._children: dict[str, ChildProcess] = {}
        self._monitors: dict[str, threading.Thread] = {}
        self._closed = False

    # ----- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> list[str]:
        """After an app (re)start: re-attach to children that still run, mark vanished ones interrupted, then
        start the next queued job. Returns the ids marked interrupted."""
        interrupted = []
        for record in self.store.with_status(RUNNING):
            if is_our_child(record.pid, record.work_dir):
                self._watch(record.id, ChildProcess(pid=record.pid), self._events_size(record))
                continue
            self.store.update(record.id, status=INTERRUPTED, finished_at=time.time(), pid=None,
                              message="The app stopped while this job was running; resume continues from the "
                                      "last saved state.")
            interrupted.append(record.id)
        self._start_next()
        return interrupted

    def shutdown(self, terminate: bool = False, timeout: float = 10.0) -> None:
        """Stop watching. Children keep running unless `terminate` (then their groups get SIGTERM)."""
        with self._lock:
            self._closed = True
            children = dict(self._children)
        if terminate:
            for child in children.values():
                child.signal_group(signal.SIGTERM)
        for thread in list(self._monitors.values()):
            thread.join(timeout)

    # ----- public API -------------------------------------------------------------------------------------------
    def submit(self, config: TrainingConfig) -> JobRecord:
        config = absolute_paths(config.validate())
        job_id = time.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        work_dir = self.settings.jobs_dir / job_id
        work_dir.mkdir(parents=True, exist_ok=True)
        data = config_to_json(config)
        (work_dir / CONFIG_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        record = self.store.create(config.output_name, data, work_dir, job_id=job_id,
                                   command=self.command(config, work_dir))
        self._changed(job_id)
        self._start_next()
        return self.store.get(job_id) or record

    def cancel(self, job_id: str) -> JobRecord:
        record = self._require(job_id)
        if record.status == QUEUED:
            self.store.update(job_id, status=CANCELLED, finished_at=time.time(), message="Cancelled before start.")
        elif record.status == RUNNING:
            self.store.update(job_id, cancel_requested=1, message="Cancelling: saving resume state...")
            (Path(record.work_dir) / STOP_FILE).touch()
            threading.Thread(target=self._escalate, args=(job_id,), name=f"cancel-{job_id}", daemon=True).start()
        self._changed(job_id)
        return self._require(job_id)

    def resume(self, job_id: str) -> JobRecord:
        """Queue a cancelled, failed or interrupted job again; it continues from its last saved state."""
        record = self._require(job_id)
        if record.status not in RESUMABLE_STATES:
            raise ValidationError(f"Job {job_id} is {record.status}; only {', '.join(RESUMABLE_STATES)} jobs can be "
                                  "resumed.")
        (Path(record.work_dir) / STOP_FILE).unlink(missing_ok=True)
        config = self._config(record)
        self.store.update(job_id, status=QUEUED, resumes=record.resumes + 1, cancel_requested=0, finished_at=None,
                          message="Queued to resume.",
                          command=json.dumps(self.command(config, Path(record.work_dir), resume=True)))
        self._changed(job_id)
        self._start_next()
        return self._require(job_id)

    def get(self, job_id: str) -> JobRecord | None:
        return self.store.get(job_id)

    def jobs(self, limit: int = 100) -> list[JobRecord]:
        return self.store.list(limit)

    def events(self, job_id: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        return read_events(Path(self._require(job_id).work_dir) / EVENTS_FILE, offset)

    def losses(self, job_id: str) -> list[tuple[int, float]]:
        """(step, loss) per optimizer step; after a resume the re-trained steps replace the lost ones."""
        by_step: dict[int, float] = {}
        for event in self.events(job_id)[0]:
            if event["type"] == ev.STEP:
                by_step[int(event["step"])] = float(event["loss"])
        return sorted(by_step.items())

    def log_tail(self, job_id: str, chars: int = LOG_TAIL_CHARS) -> str:
        path = Path(self._require(job_id).work_dir) / LOG_FILE
        if not path.is_file():
            return ""
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - chars))
            return handle.read().decode("utf-8", errors="replace")

    def wait(self, job_id: str, timeout: float = 120.0, statuses: tuple[str, ...] = (DONE, FAILED, CANCELLED,
                                                                                    INTERRUPTED)) -> JobRecord:
        """Block until the job reaches one of `statuses` (tests, scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self._require(job_id)
            if record.status in statuses:
                return record
            time.sleep(self.settings.poll_s)
        raise TimeoutError(f"Job {job_id} is still {self._require(job_id).status} after {timeout} s")

    # ----- commands ---------------------------------------------------------------------------------------------
    def command(self, config: TrainingConfig, work_dir: Path, resume: bool = False) -> list[str]:
        """The exact command line of a job (shown in the job view; users may run it themselves)."""
        return train_command(config, work_dir, python=self.settings.python, data_dir=self.settings.data_dir,
                             threads=self.settings.threads, resume=resume)

    @staticmethod
    def command_text(record: JobRecord) -> str:
        return shlex.join(record.command_args)

    # ----- internals --------------------------------------------------------------------------------------------
    def _require(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None:
            raise ValidationError(f"No training job with id '{job_id}'.")
        return record

    @staticmethod
    def _config(record: JobRecord) -> TrainingConfig:

        if not record.config_readable:
            raise ValidationError(f"Job {record.id} cannot be resumed: its stored settings are not readable. "
                                  "Start a new job with the same settings instead.")
        return config_from_json(record.config_data)[0]

    def _changed(self, job_id: str) -> None:
        if self.on_change is not None:
            self.on_change(job_id)

    @staticmethod
    def _events_size(record: JobRecord) -> int:
        path = Path(record.work_dir) / EVENTS_FILE
        return path.stat().st_size if path.is_file() else 0

    def _start_next(self) -> None:
        """Start the oldest queued job; one that cannot start is marked failed and the next one is tried."""
        with self._lock:
            if self._closed or any(child.poll() is None for child in self._children.values()):
                return
            for record in self.store.with_status(QUEUED):
                if self._launch(record):
                    return

    def _launch(self, record: JobRecord) -> bool:
        """Start the job's child; False (and the job failed, with the reason) when it cannot be started."""
        defect = record.defect
        if defect:
            log.warning("Training job %s could not be started: %s", record.id, defect)
            self._fail_to_start(record.id, f"This job could not be started: {defect} (the app may have stopped "
                                           "while it was being queued).")
            return False
        work_dir = Path(record.work_dir)
        try:
            offset = self._events_size(record)
            child = start_child(record.command_args, work_dir, self.settings.threads)
        except (OSError, ValueError) as err:  # ValueError: arguments Popen refuses (a NUL character)
            self._fail_to_start(record.id, f"The training process could not be started: {err}")
            return False
        self.store.update(record.id, status=RUNNING, pid=child.pid, started_at=time.time(),
                          message="Starting...")
        self._changed(record.id)
        self._watch(record.id, child, offset)
        return True

    def _fail_to_start(self, job_id: str, message: str) -> None:
        self.store.update(job_id, status=FAILED, finished_at=time.time(), message=message)
        self._changed(job_id)

    def _watch(self, job_id: str, child: ChildProcess, offset: int) -> None:
        with self._lock:
            self._children[job_id] = child
            thread = threading.Thread(target=self._monitor, args=(job_id, child, offset), name=f"train-{job_id}",
                                      daemon=True)
            self._monitors[job_id] = thread
        thread.start()

    def _monitor(self, job_id: str, child: ChildProcess, offset: int) -> None:
        path = Path(self._require(job_id).work_dir) / EVENTS_FILE
        final: dict[str, Any] | None = None
        while True:
            code = child.poll()
            events, offset = read_events(path, offset)
            for event in events:
                final = self._apply(job_id, event) or final
            if code is not None:
                break
            if self._closed:
                return
            time.sleep(self.settings.poll_s)
        with self._lock:
            self._children.pop(job_id, None)
        self._finish(job_id, code, final)
        self._start_next()

    def _apply(self, job_id: str, event: dict[str, Any]) -> dict[str, Any] | None:
        """One event -> store fields; returns the event when it is a final one."""
        kind = event.get("type")
        updates: dict[str, Any] = {}
        if kind == ev.STARTED:
            updates = {"total_steps": event["total_steps"], "total_epochs": event["total_epochs"],
                       "step": event.get("resumed_at", 0), "message": "Training"}
        elif kind == ev.STEP:
            updates = {k: event[k] for k in ("step", "total_steps", "epoch", "total_epochs", "loss", "its", "eta_s")}
        elif kind == ev.SAMPLE and event.get("paths"):
            updates = {"last_sample": event["paths"][-1]}
        elif kind == ev.DONE:
            updates = {"final_file": event.get("final_file", ""), "message": "Done"}
        elif kind == ev.FAILED:
            updates = {"message": event.get("message", "Training failed")}
        elif kind == ev.CANCELLED:
            updates = {"message": f"Cancelled at step {event.get('step')}; resumable."}
        if updates:
            self.store.update(job_id, **updates)
            self._changed(job_id)
        return event if kind in ev.FINAL_TYPES else None

    def _finish(self, job_id: str, code: int, final: dict[str, Any] | None) -> None:
        record = self._require(job_id)
        status, message = _final_status(code, final, bool(record.cancel_requested))
        if status == FAILED and not message:
            message = f"The training process exited with code {code}: {self.log_tail(job_id, 600).strip()[-600:]}"
        updates: dict[str, Any] = {"status": status, "finished_at": time.time(), "pid": None}
        if message:
            updates["message"] = message
        self.store.update(job_id, **updates)
        self._changed(job_id)

    def _escalate(self, job_id: str) -> None:
        """SIGTERM (then SIGKILL) to the child's group when the cooperative stop did not end it in time."""
        for signum, wait in ((signal.SIGTERM, self.settings.cancel_grace_s), (signal.SIGKILL,
                                                                               self.settings.kill_grace_s)):
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                child = self._children.get(job_id)
                if child is None or child.poll() is not None:
                    return
                time.sleep(self.settings.poll_s)
            child = self._children.get(job_id)
            if child is None or child.poll() is not None:
                return
            log.warning("Training job %s did not stop in time; sending %s", job_id, signal.Signals(signum).name)
            child.signal_group(signum)


def _final_status(code: int, final: dict[str, Any] | None, cancel_requested: bool) -> tuple[str, str]:
    """What a finished child means: its last event when it wrote one, else how it ended."""
    kind = final.get("type") if final else None
    if kind == ev.DONE and code == 0:
        return DONE, "Done"
    if kind == ev.CANCELLED:
        return CANCELLED, f"Cancelled at step {final.get('step')}; resume continues from there."
    if kind == ev.FAILED:
        return FAILED, str(final.get("message", "Training failed"))
    if cancel_requested:
        return CANCELLED, "Stopped (the process was terminated); resume continues from the last saved state."
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return INTERRUPTED, (f"The training process was killed ({name}); resume continues from the last saved "
                             "state.")
    return FAILED, ""
