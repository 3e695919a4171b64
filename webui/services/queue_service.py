"""The GPU queue as the UI and the API see it: progress, Interrupt, Skip and the live preview.

Why apart from generation: these act on whatever job runs now (a generation, a script, a model load), not on a
request, and the progress endpoints must answer without touching anything that generates.
"""
from __future__ import annotations

from typing import Any

from webui.core.progress import ProgressSnapshot
from webui.engine.generation.live_preview import LatentPreview
from webui.jobs.executor import GpuExecutor


class QueueService:
    """Reads and steers the running job of the GPU executor."""

    def __init__(self, executor: GpuExecutor, previews: LatentPreview):
        self._executor = executor
        self._previews = previews

    def progress(self) -> ProgressSnapshot:
        return self._executor.progress.snapshot()

    def interrupt(self) -> bool:
        return self._executor.interrupt()

    def skip(self) -> bool:
        return self._executor.skip()

    def current_preview(self) -> Any | None:
        """The running job's live preview (a small PIL image of its current latents); None when idle."""
        return self._previews.image() if self._executor.busy else None
