"""The background worker: child process per job, cancel + resume, SIGKILL -> interrupted -> resume, history in
SQLite across restarts, and the `python -m webui.train` CLI with a SimpleTuner config."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_config
from webui.jobs.job_store import CANCELLED, DONE, INTERRUPTED, RUNNING, JobStore
from webui.jobs.training_worker import TrainingWorker, WorkerSettings
from webui.training.events import iter_events

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def worker(tmp_path):
    store = JobStore(tmp_path / "data" / "training" / "jobs.sqlite")
    worker = TrainingWorker(store, WorkerSettings.for_data_dir(tmp_path / "data", poll_s=0.1, cancel_grace_s=60))
    worker.start()
    yield worker
    worker.shutdown(terminate=True)


def wait_for_event(worker, job_id, kind, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in worker.events(job_id)[0] if e["type"] == kind]
        if found:
            return found[-1]
        record = worker.get(job_id)
        assert record.status in ("queued", "running"), (record.status, record.message, worker.log_tail(job_id))
        time.sleep(0.05)
    raise TimeoutError(kind)


def step_losses(worker, job_id):
    """Every step event's loss, in order, including steps re-trained after a resume."""
    return [(e["step"], e["loss"]) for e in worker.events(job_id)[0] if e["type"] == "step"]


def test_cancel_then_resume_in_a_child_process(worker, tiny_checkpoints, shapes_dataset, tmp_path):
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=20, output_name="bg")
    job = worker.submit(config)
    assert job.command_args[1:3] == ["-m", "webui.train"]
    wait_for_event(worker, job.id, "step")
    assert worker.cancel(job.id).cancel_requested == 1
    record = worker.wait(job.id)
    assert record.status == CANCELLED, (record.message, worker.log_tail(job.id))
    stopped_at = record.step
    assert 0 < stopped_at < 20
    assert "--resume" in worker.resume(job.id).command_args
    record = worker.wait(job.id, timeout=180)
    assert record.status == DONE, (record.message, worker.log_tail(job.id))
    assert record.step == 20 and record.resumes == 1
    assert Path(record.final_file) == tmp_path / "data" / "models" / "Lora" / "bg.safetensors"
    assert Path(record.final_file).is_file()
    assert [step for step, _ in worker.losses(job.id)] == list(range(1, 21))


def test_sigkill_marks_the_job_interrupted_and_resume_continues_exactly(worker, tiny_checkpoints, shapes_dataset):
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=20, save_state_every_n_steps=2,
                         output_name="killed")
    job = worker.submit(config)
    state = wait_for_event(worker, job.id, "state")
    os.kill(worker.get(job.id).pid, signal.SIGKILL)
    record = worker.wait(job.id)
    assert record.status == INTERRUPTED and "killed" in record.message
    before = dict(step_losses(worker, job.id))
    worker.resume(job.id)
    record = worker.wait(job.id, timeout=180)
    assert record.status == DONE, (record.message, worker.log_tail(job.id))
    events = worker.events(job.id)[0]
    resumed_at = [e for e in events if e["type"] == "started"][-1]["resumed_at"]
    assert resumed_at >= state["step"]
    after = step_losses(worker, job.id)[len(before):]
    assert after[0][0] == resumed_at + 1 and after[-1][0] == 20
    # steps trained twice (after the saved state, before the kill) give bit-identical losses
    assert all(before[step] == loss for step, loss in after if step in before)


def test_history_survives_restart_and_dead_running_jobs_become_interrupted(tmp_path):
    data = tmp_path / "data"
    store = JobStore(data / "training" / "jobs.sqlite")
    done = store.create("first", {"output_name": "first"}, data / "j1")
    store.update(done.id, status=DONE, step=10, total_steps=10, loss=0.5)
    running = store.create("second", {"output_name": "second"}, data / "j2")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.update(running.id, status=RUNNING, pid=dead.pid)
    again = JobStore(data / "training" / "jobs.sqlite")  # the app restarted
    worker = TrainingWorker(again, WorkerSettings.for_data_dir(data))
    assert worker.start() == [running.id]
    assert again.get(running.id).status == INTERRUPTED and "resume" in again.get(running.id).message
    assert again.get(done.id).loss == 0.5 and [r.name for r in again.list()] == ["second", "first"]
    worker.shutdown()


def test_cli_runs_a_simpletuner_config(tiny_checkpoints, shapes_dataset, tmp_path):
    lycoris = tmp_path / "lycoris_config.json"
    lycoris.write_text(json.dumps({"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1,
                                   "factor": 16, "apply_preset": {"target_module": ["Attention"]}}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_type": "lora", "lora_type": "lycoris", "lycoris_config": str(lycoris), "model_family": "sd1x",
        "pretrained_model_name_or_path": str(tiny_checkpoints["sd1"]), "instance_data_dir": str(shapes_dataset),
        "output_dir": str(tmp_path / "out"), "tracker_run_name": "cli-run", "train_batch_size": 2,
        "learning_rate": "1e-3", "max_train_steps": 3, "num_train_epochs": 0, "optimizer": "optimi-stableadamw",
        "lr_scheduler": "cosine", "seed": 1, "resolution": 32, "report_to": "wandb",
        "base_model_precision": "int8-quanto"}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "webui.train", str(config), "--data-dir", str(tmp_path),
                           "--threads", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "cli-run.safetensors").is_file()
    assert "report_to" in done.stderr and "not applied on the CPU" in done.stderr
    events = list(iter_events(tmp_path / "training" / "cli-run" / "events.jsonl"))
    assert events[-1]["type"] == "done"
    config.write_text(json.dumps({"model_type": "lora", "lora_type": "lycoris", "lycoris_config": {"algo": "lokr"}}))
    failed = subprocess.run([sys.executable, "-m", "webui.train", str(config), "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode == 1 and "multiplier" in failed.stderr and "Traceback" not in failed.stderr


def test_accelerate_launch_with_two_cpu_processes(worker, tiny_checkpoints, shapes_dataset):
    """`accelerate launch` (torchrun launcher) with 2 processes on the CPU: gloo data parallel, rank 0 reports."""
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=0, epochs=1,
                         num_processes=2, output_name="ddp")
    job = worker.submit(config)
    assert "accelerate.commands.launch" in job.command_args and "--num_processes" in job.command_args
    record = worker.wait(job.id, timeout=240)
    assert record.status == DONE, (record.message, worker.log_tail(job.id))
    started = next(e for e in worker.events(job.id)[0] if e["type"] == "started")
    assert started["steps_per_epoch"] == 2  # 4 batches of 2 split over 2 ranks
    assert record.step == 2 and Path(record.final_file).is_file()
