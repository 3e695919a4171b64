"""The generation/training device-sharing policy (pure decisions) and its executor half with a real executor."""
from __future__ import annotations

import threading
import time

import pytest

from webui.core.device_policy import OFFLOAD, SHARE, WAIT, RunningTraining, plan_sharing, shares_device
from webui.core.errors import GenerationError
from webui.jobs.device_arbiter import PARK_LABEL, DeviceShare
from webui.jobs.executor import GpuExecutor

JOB = RunningTraining("j1", "zorb", "cuda", step=10, total_steps=100)


@pytest.mark.parametrize(("generation", "job", "shared"), [
    ("cuda", JOB, True), ("cuda:0", JOB, True), ("cuda:1", JOB, False),
    ("cuda:1", RunningTraining("j", "n", "cuda", processes=2), True),  # accelerate over every GPU
    ("cpu", JOB, False), ("cpu", RunningTraining("j", "n", "cpu"), True), ("mps", JOB, False),
])
def test_which_devices_are_shared(generation, job, shared):
    assert shares_device(generation, job) is shared


def test_plans_per_policy():
    assert plan_sharing(OFFLOAD, "cuda", []) == plan_sharing(WAIT, "cuda", []) == plan_sharing(SHARE, "cuda", [])
    assert plan_sharing(OFFLOAD, "cuda", []).notice is None
    offload = plan_sharing(OFFLOAD, "cuda", [JOB])
    assert (offload.park, offload.wait) == (True, False) and "'zorb' (step 10/100)" in offload.notice
    assert "back to RAM" in offload.notice
    wait = plan_sharing(WAIT, "cuda:0", [JOB])
    assert (wait.park, wait.wait) == (True, True) and wait.notice.startswith("Waited for the training job")
    share = plan_sharing(SHARE, "cuda", [JOB])
    assert (share.park, share.wait) == (False, False) and "out-of-memory" in share.notice
    assert plan_sharing("bogus", "cuda", [JOB]) == offload  # a hand-edited config falls back to the default
    other_gpu = plan_sharing(WAIT, "cuda:1", [JOB])
    assert (other_gpu.wait, other_gpu.notice) == (False, None)
    cpu = plan_sharing(OFFLOAD, "cpu", [RunningTraining("j", "cpu-job", "cpu")])
    assert (cpu.park, cpu.wait) == (False, False) and "cores" in cpu.notice


class _World:
    """The running jobs and parked state a DeviceShare sees (what the services hand it)."""

    def __init__(self, policy: str):
        self.policy = policy
        self.jobs: list[RunningTraining] = []
        self.parks: list[str] = []

    def share(self) -> DeviceShare:
        return DeviceShare("cuda", lambda: self.policy, lambda: list(self.jobs), self.park, poll_seconds=0.02)

    def park(self) -> bool:
        self.parks.append(threading.current_thread().name)
        return True


def test_offload_parks_after_each_job_while_training_runs():
    world = _World(OFFLOAD)
    share = world.share()
    executor = GpuExecutor(around=share.around)
    try:
        assert executor.run(lambda token, progress: share.notice()) is None
        assert world.parks == []  # nothing trains: the model stays where it is
        world.jobs.append(JOB)
        share.training_changed(executor.submit)  # a job started: park queued on the executor thread
        notice = executor.run(lambda token, progress: share.notice())
        assert "'zorb'" in notice and share.notice() is None  # only inside the job
        assert world.parks == ["gpu-executor", "gpu-executor"]  # the queued park, then after the generation
    finally:
        executor.shutdown()


def test_wait_holds_the_job_until_training_ends_and_interrupt_cancels_it():
    world = _World(WAIT)
    world.jobs.append(JOB)
    executor = GpuExecutor(around=world.share().around)
    try:
        future = executor.submit(lambda token, progress: "generated", label="txt2img")
        time.sleep(0.2)
        assert not future.done()
        assert "Waiting for training 'zorb' (step 10/100)" in executor.progress.snapshot().textinfo
        executor.interrupt()
        with pytest.raises(GenerationError, match="Interrupted while waiting"):
            future.result(timeout=5)
        second = executor.submit(lambda token, progress: "generated", label="txt2img")
        time.sleep(0.1)
        assert not second.done()
        world.jobs.clear()  # training ended
        assert second.result(timeout=5) == "generated"
        # the start-up load and the park job never wait
        world.jobs.append(JOB)
        assert executor.submit(lambda t, p: "loaded", label="startup-load").result(timeout=5) == "loaded"
        assert executor.submit(lambda t, p: "parked", label=PARK_LABEL).result(timeout=5) == "parked"
    finally:
        world.jobs.clear()
        executor.shutdown()
