"""The single GPU executor: every generation, from the UI or the API, runs here, one at a time, in order.

Why one worker thread: the device holds one model and one activation set at a time; two concurrent pipelines
would fight for memory. Callers get futures; `interrupt`/`skip` reach the running job's `CancelToken`.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from webui.core.progress import CancelToken, ProgressTracker

log = logging.getLogger(__name__)

JobFn = Callable[[CancelToken, ProgressTracker], Any]
# Wraps every job: (label, token, progress) -> a context manager (e.g. `DeviceShare.around`).
AroundFn = Callable[[str, CancelToken, ProgressTracker], AbstractContextManager]


def _nothing_around(label: str, token: CancelToken, progress: ProgressTracker) -> AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class _Job:
    fn: JobFn
    label: str
    future: Future
    token: CancelToken


class GpuExecutor:
    """A FIFO of jobs served by one daemon thread. `around` wraps each job, so a policy such as sharing the device
    with training applies to every job in one place (given at construction, by `build_services`)."""

    def __init__(self, progress: ProgressTracker | None = None, on_worker_start: Callable[[], None] | None = None,
                 around: AroundFn | None = None):
        self.progress = progress or ProgressTracker()
        self._around: AroundFn = around or _nothing_around
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._current: _Job | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._on_worker_start = on_worker_start
        self._thread = threading.Thread(target=self._run, name="gpu-executor", daemon=True)
        self._thread.start()

    def submit(self, fn: JobFn, label: str = "job") -> Future:
        """Queue `fn(token, progress)`; its return value or exception lands in the returned future."""
        job = _Job(fn=fn, label=label, future=Future(), token=CancelToken())
        with self._lock:
            if self._closing:  # the server is stopping: nothing new starts
                job.future.cancel()
                return job.future
        self._queue.put(job)
        self.progress.set_queued(self._queue.qsize())
        return job.future

    def run(self, fn: JobFn, label: str = "job") -> Any:
        """Submit and wait: the convenient form for synchronous callers (API handlers, scripts)."""
        return self.submit(fn, label).result()

    def interrupt(self) -> bool:
        """Stop the running job after its current step. Returns False when nothing is running."""
        with self._lock:
            if self._current is None:
                return False
            self._current.token.interrupt()
            self.progress.update(interrupted=True)
            return True

    def skip(self) -> bool:
        """End the running job's current batch; the next batch starts."""
        with self._lock:
            if self._current is None:
                return False
            self._current.token.skip()
            self.progress.update(skipped=True)
            return True

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._current is not None

    def shutdown(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def close(self, interrupt: bool = True) -> None:
        """Stop for good, promptly (the server is exiting): queued jobs are cancelled, the running one is
        interrupted (it ends after its current step and keeps what it finished; with `interrupt=False` it runs to
        its end, for a restart) and nothing starts afterwards. `shutdown` then waits for the worker."""
        with self._lock:
            self._closing = True
            if interrupt and self._current is not None:
                self._current.token.interrupt()
                self.progress.update(interrupted=True)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.cancel()
        self._queue.put(None)

    def _run(self) -> None:
        if self._on_worker_start is not None:
            self._on_worker_start()
        while True:
            job = self._queue.get()
            if job is None:
                return
            self.progress.set_queued(self._queue.qsize())
            with self._lock:
                if self._closing:
                    job.future.cancel()
                    continue
                if not job.future.set_running_or_notify_cancel():
                    continue
                self._current = job
            try:
                with self._around(job.label, job.token, self.progress):
                    result = job.fn(job.token, self.progress)
            except BaseException as exc:  # noqa: BLE001 - the caller gets the exception through the future
                if not isinstance(exc, Exception):
                    log.exception("job %s died", job.label)
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)
            finally:
                with self._lock:
                    self._current = None
                self.progress.finish()
