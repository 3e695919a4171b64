"""The task queue: tasks from the store run on the one GPU executor, in the store's order.

Why "pumps": the GPU executor stays the only thing that runs work on the device (model loads, parks and tasks share
its FIFO), yet the order of tasks must be the store's, which the user changes while they wait. So a task is not
handed to the executor; each time a task becomes runnable (queued, resumed, found at start-up) one pump job is
queued on the executor, and a pump, when its turn comes, runs whatever task is first in the store *then*. Each
pump runs at most one task, and every task that becomes runnable adds a pump, so no task is left without one;
a pump that finds nothing (the task was cancelled or paused, the queue is paused) does nothing.

What runs a task is the caller's `TaskRunner` (the task service: it turns the stored request back into a request
and generates inline, inside the pump's job). Callers in this process wait on the future `enqueue` returns.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from webui.core.errors import GenerationError
from webui.core.progress import CancelToken, ProgressTracker
from webui.jobs.executor import GpuExecutor
from webui.jobs.task_store import CANCELLED, DONE, FAILED, PAUSED, PENDING_STATES, QUEUED, TaskRecord, TaskStore

log = logging.getLogger(__name__)

TASK_LABEL = "task"
KEEP_FINISHED = 1000  # finished tasks listed (older ones are forgotten at start-up)
STOPPING_MESSAGE = "The server is stopping: the task stays queued and runs after the next start."


@dataclass(frozen=True)
class TaskOutcome:
    """What a finished task gives: `value` for the caller waiting in this process (the service's own result
    object), `images` the result files to list, `result` the JSON-able rest (infotexts, seeds, model ...)."""

    value: Any
    images: tuple[str, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False


TaskRunner = Callable[[TaskRecord, CancelToken, ProgressTracker], TaskOutcome]


class TaskQueue:
    """Enqueue, cancel, pause, reorder; runs tasks through the executor once `start` gave it a runner."""

    def __init__(self, store: TaskStore, executor: GpuExecutor, retry_once: Callable[[], bool] = lambda: False):
        self.store = store
        self._executor = executor
        self._retry_once = retry_once
        self._runner: TaskRunner | None = None
        self._lock = threading.Lock()
        self._futures: dict[str, Future] = {}
        self._running: tuple[str, CancelToken] | None = None
        self._cancel_asked: set[str] = set()

    def start(self, runner: TaskRunner) -> list[str]:
        """Recover after a crash (a task left running fails, or is retried once), then run what is queued.
        Returns the ids of tasks that were running when the previous process died."""
        self._runner = runner
        touched = self.store.recover(self._retry_once())
        self.store.prune(KEEP_FINISHED)
        for _ in self.store.with_state(QUEUED):
            self._pump_later()
        return touched

    def enqueue(self, task_id: str, kind: str, request: Any, summary: str = "", source: str = "") -> Future:
        """Store a queued task (at the end) and return the future its result lands in."""
        future: Future = Future()
        with self._lock:
            self._futures[task_id] = future
        self.store.create(task_id, kind, request, summary, source)
        self._pump_later()
        return future

    def future(self, task_id: str) -> Future | None:
        """The future of a task enqueued by this process and not finished yet."""
        with self._lock:
            return self._futures.get(task_id)

    @property
    def running_id(self) -> str | None:
        with self._lock:
            return self._running[0] if self._running else None

    def progress(self, record: TaskRecord) -> float:
        """0..1: live from the executor's tracker while the task runs, else as stored."""
        if record.state == DONE:
            return 1.0
        if self.running_id == record.id:
            return self._executor.progress.snapshot().fraction
        return float(record.progress or 0.0)

    def cancel(self, task_id: str) -> bool:
        """A pending task never runs; the running one is interrupted (it keeps what it finished). False when the
        task is finished or unknown."""
        if self.store.set_state_if(task_id, PENDING_STATES, state=CANCELLED, finished_at=time.time(),
                                   error="Cancelled before it ran."):
            self._settle(task_id, error=GenerationError(f"Task {task_id} was cancelled before it ran."))
            return True
        with self._lock:
            if self._running is None or self._running[0] != task_id:
                return False
            self._cancel_asked.add(task_id)
            self._running[1].interrupt()
        return True

    def pause(self, task_id: str) -> bool:
        """Hold a queued task back (it keeps its place); `resume` lets it run again."""
        return self.store.set_state_if(task_id, (QUEUED,), state=PAUSED)

    def resume(self, task_id: str) -> bool:
        if not self.store.set_state_if(task_id, (PAUSED,), state=QUEUED):
            return False
        self._pump_later()
        return True

    def move(self, task_id: str, offset: int) -> bool:
        return self.store.move(task_id, offset)

    def pause_queue(self) -> None:
        """No task starts until `resume_queue` (the running one finishes); kept across restarts."""
        self.store.set_queue_paused(True)

    def resume_queue(self) -> None:
        self.store.set_queue_paused(False)
        for _ in self.store.with_state(QUEUED):
            self._pump_later()

    @property
    def queue_paused(self) -> bool:
        return self.store.queue_paused()

    def _pump_later(self) -> None:
        pump = self._executor.submit(self._pump, label=TASK_LABEL)
        pump.add_done_callback(self._pump_done)

    def _pump_done(self, pump: Future) -> None:
        """A pump cancelled by the executor means the server is stopping: callers waiting in this process are
        answered now; their tasks stay queued in the store and run after the next start."""
        if not pump.cancelled():
            return
        with self._lock:
            waiting = [task_id for task_id in self._futures if task_id != (self._running or ("",))[0]]
        for task_id in waiting:
            self._settle(task_id, error=GenerationError(STOPPING_MESSAGE))

    def _pump(self, token: CancelToken, progress: ProgressTracker) -> None:
        if self._runner is None or self.store.queue_paused():
            return
        record = self.store.claim_next()
        if record is None:
            return
        with self._lock:
            self._running = (record.id, token)
        try:
            outcome = self._runner(record, token, progress)
        except Exception as exc:  # noqa: BLE001 - the task fails, the queue goes on
            self.store.update(record.id, state=FAILED, finished_at=time.time(), error=str(exc) or type(exc).__name__)
            self._settle(record.id, error=exc)
        else:
            with self._lock:
                cancelled = outcome.cancelled or record.id in self._cancel_asked
            self.store.update(record.id, state=CANCELLED if cancelled else DONE, finished_at=time.time(),
                              progress=1.0, images=json.dumps(list(outcome.images)),
                              result=json.dumps(outcome.result), error="Cancelled while it ran." if cancelled else "")
            self._settle(record.id, value=outcome.value)
        finally:
            with self._lock:
                self._running = None
                self._cancel_asked.discard(record.id)

    def _settle(self, task_id: str, value: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            future = self._futures.pop(task_id, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
