"""`GpuExecutor.close`: what a stopping server relies on (the running job is interrupted and keeps its result,
queued jobs are cancelled, nothing starts afterwards)."""
from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from webui.jobs.executor import GpuExecutor


def test_close_interrupts_the_running_job_and_cancels_the_queue():
    executor = GpuExecutor()
    started = threading.Event()

    def long_job(token, progress):
        started.set()
        steps = 0
        while not token.interrupted and steps < 10_000:
            steps += 1
            threading.Event().wait(0.001)
        return ("stopped early", steps)

    running = executor.submit(long_job, "long")
    queued = executor.submit(lambda token, progress: "should never run", "queued")
    assert started.wait(10)
    executor.close()
    executor.shutdown(10)
    result, steps = running.result(5)
    assert result == "stopped early" and steps < 10_000
    with pytest.raises(CancelledError):
        queued.result(1)
    late = executor.submit(lambda token, progress: "too late", "late")
    with pytest.raises(CancelledError):
        late.result(1)  # nothing runs after close
    assert not executor.busy


def test_close_when_idle():
    executor = GpuExecutor()
    assert executor.run(lambda token, progress: 42) == 42
    executor.close()
    executor.shutdown(5)
    assert executor.submit(lambda token, progress: 1).cancelled()
