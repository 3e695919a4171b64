"""Generation and training on one device: the executor-side half of `webui.core.device_policy`.

Every job of the GPU executor runs inside `DeviceShare.around`: before the job it may wait (policy "wait") until
no training job uses the device; during the job the user-facing notice is available to the generation code
(`notice()`), so the result says that a training job shares the device; after the job the generation model goes
back to RAM (`park`) when the policy says so and a training job still runs. When a training job starts, the
services call `training_changed`, which queues a park on the executor, so a model sitting idle on the GPU is moved
out of training's way without interrupting a generation that is running.

Why here and not in the worker: the training process cannot reach the app's model; only the executor thread may
touch it (one thing on the device at a time).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from webui.core.device_policy import RunningTraining, SharePlan, plan_sharing
from webui.core.errors import GenerationError
from webui.core.progress import CancelToken, ProgressTracker

log = logging.getLogger(__name__)

PARK_LABEL = "park-generation-model"
# Jobs that never wait for training: the start-up load (the UI would show no model for the whole training run;
# the model is parked again right after) and the park job itself.
NO_WAIT_LABELS = frozenset({"startup-load", PARK_LABEL})


class DeviceShare:
    """Applies the sharing policy around executor jobs.

    policy: reads the current policy (a Settings option, so a change applies to the next job);
    running: the training jobs running now; park: moves the generation model to RAM, True when it moved.
    """

    def __init__(self, generation_device: str, policy: Callable[[], str],
                 running: Callable[[], Sequence[RunningTraining]], park: Callable[[], bool],
                 poll_seconds: float = 1.0):
        self.generation_device = generation_device
        self._policy = policy
        self._running = running
        self._park = park
        self.poll_seconds = poll_seconds
        self._local = threading.local()

    def plan(self) -> SharePlan:
        return plan_sharing(self._policy(), self.generation_device, self._running())

    def notice(self) -> str | None:
        """The notice of the job running in this thread (None outside a job or when nothing is shared)."""
        return getattr(self._local, "notice", None)

    @contextlib.contextmanager
    def around(self, label: str, token: CancelToken, progress: ProgressTracker) -> Iterator[None]:
        plan = self.plan()
        if plan.wait and label not in NO_WAIT_LABELS:
            self._wait(plan, token, progress)
        self._local.notice = plan.notice
        try:
            yield
        finally:
            self._local.notice = None
            if label != PARK_LABEL:
                self.park_if_needed()

    def park_if_needed(self) -> bool:
        """Park the generation model when a training job shares the device now (called in the executor thread)."""
        if not self.plan().park:
            return False
        moved = self._park()
        if moved:
            log.info("A training job shares %s: the generation model was moved to RAM.", self.generation_device)
        return moved

    def training_changed(self, submit: Callable[..., object]) -> None:
        """A training job changed state: queue a park on the executor when one now shares the device."""
        if self.plan().park:
            submit(lambda token, progress: self.park_if_needed(), label=PARK_LABEL)

    def _wait(self, plan: SharePlan, token: CancelToken, progress: ProgressTracker) -> None:
        """Hold the job until no training job shares the device; Interrupt cancels the waiting job."""
        self._park()
        while plan.jobs:
            if token.interrupted:
                raise GenerationError("Interrupted while waiting for training to end; nothing was generated.")
            names = ", ".join(f"'{job.name}' (step {job.step}/{job.total_steps})" for job in plan.jobs)
            progress.update(textinfo=f"Waiting for training {names} to end (Settings > Training); Interrupt "
                                     f"cancels this generation.")
            time.sleep(self.poll_seconds)
            plan = self.plan()
