"""An executor that runs each job at once in the calling thread, and the protocol both executors share.

Why: a script (X/Y/Z plot, Prompt matrix, tiled upscale) is ONE job of the GPU executor, and each of its cells
goes through the same generation service as a plain request. Inside the script's job the cells cannot queue
behind the script on the real executor (they would wait for themselves), so the script builds its generation
service with an `InlineExecutor` carrying the script's cancel token and progress.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from webui.core.progress import CancelToken, ProgressTracker

JobFn = Callable[[CancelToken, ProgressTracker], Any]


class JobRunner(Protocol):
    """What the services need of an executor: queue a job (a future) or run it and wait."""

    def submit(self, fn: JobFn, label: str = "job") -> Future: ...

    def run(self, fn: JobFn, label: str = "job") -> Any: ...


class InlineExecutor:
    """Runs every job at once, in the thread that calls it, with a fixed cancel token and progress tracker."""

    def __init__(self, token: CancelToken, progress: ProgressTracker):
        self.token = token
        self.progress = progress

    def submit(self, fn: JobFn, label: str = "job") -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(self.token, self.progress))
        except Exception as exc:  # noqa: BLE001 - delivered through the future, like the real executor
            future.set_exception(exc)
        return future

    def run(self, fn: JobFn, label: str = "job") -> Any:
        return self.submit(fn, label).result()
