"""The task queue on the real GPU executor with a recording runner: order, reorder, cancel, pause (per task and
for the whole queue), crash recovery; no model needed, so these run in milliseconds."""
from __future__ import annotations

import threading
import time

import pytest

from webui.core.errors import GenerationError
from webui.jobs.executor import GpuExecutor
from webui.jobs.task_queue import TaskOutcome, TaskQueue
from webui.jobs.task_store import CANCELLED, CRASH_MESSAGE, DONE, FAILED, PAUSED, QUEUED, RUNNING, TaskStore


class Recorder:
    """Runs tasks by recording their ids; a task whose request says "block" waits for `release` (or a cancel)."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, record, token, progress) -> TaskOutcome:
        self.ran.append(record.request_data["name"])
        if record.request_data.get("block"):
            self.started.set()
            while not self.release.is_set() and not token.interrupted:
                time.sleep(0.01)
        if record.request_data.get("fail"):
            raise GenerationError("boom")
        return TaskOutcome(value=record.request_data["name"], images=(f"/x/{record.id}.png",),
                           result={"name": record.request_data["name"]})


@pytest.fixture
def queue(tmp_path):
    executor = GpuExecutor()
    store = TaskStore(tmp_path / "jobs.sqlite", tmp_path / "queue")
    task_queue = TaskQueue(store, executor)
    runner = Recorder()
    task_queue.start(runner)
    yield task_queue, runner
    executor.close()
    executor.shutdown()


def add(task_queue: TaskQueue, name: str, **extra):
    return task_queue.enqueue(f"id-{name}", "txt2img", {"name": name, **extra})


def test_tasks_run_in_order_and_finish_with_their_results(queue):
    task_queue, runner = queue
    futures = [add(task_queue, name) for name in "abc"]
    assert [future.result(10) for future in futures] == ["a", "b", "c"]
    assert runner.ran == ["a", "b", "c"]
    record = task_queue.store.get("id-b")
    assert record.state == DONE and record.image_paths == ["/x/id-b.png"] and record.result_data == {"name": "b"}
    assert record.started_at <= record.finished_at


def test_reorder_cancel_and_pause_change_what_runs(queue):
    task_queue, runner = queue
    task_queue.pause_queue()
    futures = {name: add(task_queue, name) for name in "abcde"}
    assert task_queue.move("id-e", -1) and task_queue.move("id-e", -1)  # a b e c d
    assert not task_queue.move("id-a", -1)  # already first
    assert task_queue.cancel("id-b")
    assert task_queue.pause("id-c")
    assert task_queue.store.get("id-c").state == PAUSED
    with pytest.raises(GenerationError, match="cancelled"):
        futures["b"].result(1)
    time.sleep(0.2)
    assert runner.ran == []  # the queue is paused
    task_queue.resume_queue()
    for name in "aed":
        futures[name].result(10)
    assert runner.ran == ["a", "e", "d"]
    assert not futures["c"].done() and task_queue.store.get("id-c").state == PAUSED
    assert task_queue.resume("id-c")
    assert futures["c"].result(10) == "c"
    assert task_queue.store.get("id-b").state == CANCELLED
    assert runner.ran == ["a", "e", "d", "c"]


def test_cancel_of_the_running_task_interrupts_it_and_a_failure_does_not_stop_the_queue(queue):
    task_queue, runner = queue
    slow = add(task_queue, "slow", block=True)
    failing = add(task_queue, "bad", fail=True)
    after = add(task_queue, "after")
    assert runner.started.wait(10)
    assert task_queue.running_id == "id-slow"
    assert task_queue.cancel("id-slow")
    assert slow.result(10) == "slow"  # it keeps what it made
    assert task_queue.store.get("id-slow").state == CANCELLED
    with pytest.raises(GenerationError, match="boom"):
        failing.result(10)
    assert task_queue.store.get("id-bad").state == FAILED and task_queue.store.get("id-bad").error == "boom"
    assert after.result(10) == "after"
    assert not task_queue.cancel("id-after")  # finished tasks stay as they are


@pytest.mark.parametrize("retry", [False, True])
def test_a_task_left_running_by_a_crash_fails_or_is_retried_once(tmp_path, retry):
    store = TaskStore(tmp_path / "jobs.sqlite", tmp_path / "queue")
    for name in ("crashed", "waiting"):
        store.create(f"id-{name}", "txt2img", {"name": name})
    store.create("id-old", "txt2img", {"name": "old"})
    store.update("id-old", state=DONE, images='["/x/old.png"]', finished_at=1.0)
    assert store.claim_next().id == "id-crashed"  # the previous process died while this one ran
    executor = GpuExecutor()
    try:
        runner = Recorder()
        task_queue = TaskQueue(store, executor, retry_once=lambda: retry)
        assert task_queue.start(runner) == ["id-crashed"]
        deadline = time.monotonic() + 10
        while len(runner.ran) < (2 if retry else 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        crashed = store.get("id-crashed")
        if retry:
            assert crashed.state == DONE and crashed.retries == 1 and runner.ran == ["crashed", "waiting"]
        else:
            assert crashed.state == FAILED and crashed.error == CRASH_MESSAGE and runner.ran == ["waiting"]
        assert store.get("id-waiting").state == DONE
        assert store.get("id-old").image_paths == ["/x/old.png"]
        assert store.with_state(RUNNING, QUEUED) == []
    finally:
        executor.close()
        executor.shutdown()


def test_stopping_the_executor_answers_waiters_and_keeps_their_tasks_queued(queue):
    task_queue, runner = queue
    task_queue.pause_queue()
    waiting = add(task_queue, "later")
    task_queue._executor.close()  # what the server does on SIGTERM
    task_queue.resume_queue()  # its pumps are refused: the executor is closing
    with pytest.raises(GenerationError, match="stays queued"):
        waiting.result(5)
    assert task_queue.store.get("id-later").state == QUEUED


def test_prune_forgets_the_oldest_finished_tasks_and_their_folders(tmp_path):
    store = TaskStore(tmp_path / "jobs.sqlite", tmp_path / "queue")
    for n in range(5):
        store.create(f"t{n}", "txt2img", {"name": n})
        (store.folder(f"t{n}") / "result-0.png").write_bytes(b"png")
        store.update(f"t{n}", state=DONE, finished_at=float(n))
    store.create("pending", "txt2img", {"name": "p"})
    assert store.prune(keep=2) == 3
    assert sorted(record.id for record in store.list()) == ["pending", "t3", "t4"]
    assert not (tmp_path / "queue" / "t0").exists() and (tmp_path / "queue" / "t4" / "result-0.png").is_file()
