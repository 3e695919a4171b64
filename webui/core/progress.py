"""Progress and cancellation shared between the executor (which runs jobs) and whoever watches them.

Why thread-safe plain objects: the UI and API poll progress from other threads while the single GPU worker
updates it; a lock keeps each snapshot consistent.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace


class CancelToken:
    """Cooperative cancellation, checked by the engine after every sampling step.

    `interrupt` stops the whole job after the current step; `skip` ends the current batch and goes on.
    """

    def __init__(self) -> None:
        self._interrupted = threading.Event()
        self._skipped = threading.Event()

    def interrupt(self) -> None:
        self._interrupted.set()

    def skip(self) -> None:
        self._skipped.set()

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    @property
    def skipped(self) -> bool:
        return self._skipped.is_set()

    def should_stop_batch(self) -> bool:
        return self._interrupted.is_set() or self._skipped.is_set()

    def clear_skip(self) -> None:
        """Called when a new batch starts: a skip applies to one batch only."""
        self._skipped.clear()


@dataclass(frozen=True)
class ProgressSnapshot:
    """What a progress bar shows. `job_no` counts batches (A1111's job_count / job_no)."""

    active: bool = False
    job: str = ""
    job_no: int = 0
    job_count: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    started_at: float = 0.0
    interrupted: bool = False
    skipped: bool = False
    textinfo: str = ""
    queued: int = 0

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1] over all batches and steps."""
        if not self.active or self.job_count <= 0 or self.sampling_steps <= 0:
            return 0.0
        done = self.job_no + min(self.sampling_step, self.sampling_steps) / self.sampling_steps
        return max(0.0, min(1.0, done / self.job_count))

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Remaining seconds, extrapolated from the elapsed time; None before the first step completes."""
        frac = self.fraction
        if frac <= 0.0:
            return None
        elapsed = (now or time.monotonic()) - self.started_at
        return max(0.0, elapsed / frac - elapsed)


class ProgressTracker:
    """Holds the current job's progress; the worker writes, anybody reads a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = ProgressSnapshot()

    def start(self, job: str, job_count: int, sampling_steps: int) -> None:
        with self._lock:
            self._state = ProgressSnapshot(active=True, job=job, job_count=job_count,
                                           sampling_steps=sampling_steps, started_at=time.monotonic(),
                                           queued=self._state.queued)

    def update(self, **fields: object) -> None:
        with self._lock:
            self._state = replace(self._state, **fields)

    def finish(self) -> None:
        with self._lock:
            self._state = ProgressSnapshot(queued=self._state.queued)

    def set_queued(self, count: int) -> None:
        with self._lock:
            self._state = replace(self._state, queued=count)

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return self._state
