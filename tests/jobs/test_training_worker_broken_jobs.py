"""A queued job left broken in the job database (a crash midway, an old version, a hand edit) is marked failed with
a message and never blocks the jobs queued after it."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_config
from webui.core.errors import ValidationError
from webui.jobs.job_store import DONE, FAILED, QUEUED, JobStore
from webui.jobs.training_worker import TrainingWorker, WorkerSettings


def insert_row(db: Path, job_id: str, work_dir: Path, **columns) -> None:
    """A row written straight into the database, as a crash or another version may have left it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    values = {"id": job_id, "name": job_id, "status": QUEUED, "created_at": time.time() - 60,
              "work_dir": str(work_dir), **columns}
    with sqlite3.connect(db) as conn:
        conn.execute(f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                     list(values.values()))
    conn.close()


def test_broken_queued_jobs_fail_with_a_message_and_the_next_job_runs(tmp_path, tiny_checkpoints, shapes_dataset):
    data = tmp_path / "data"
    db = data / "training" / "jobs.sqlite"
    store = JobStore(db)
    jobs = data / "training" / "jobs"
    good_config = json.dumps({"output_name": "x"})
    insert_row(db, "no-command", jobs / "a", config=good_config)  # the crash: row written, command not yet
    insert_row(db, "empty-command", jobs / "b", config=good_config, command="[]")
    insert_row(db, "not-a-list", jobs / "c", config=good_config, command='"python -m webui.train"')
    insert_row(db, "bad-json", jobs / "d", config="{not json", command="[1, 2")
    worker = TrainingWorker(store, WorkerSettings.for_data_dir(data, poll_s=0.1))
    try:
        worker.start()  # an app start finds them first in the queue
        job = worker.submit(tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=2,
                                        output_name="after-broken"))
        record = worker.wait(job.id, timeout=180)
        assert record.status == DONE, (record.message, worker.log_tail(job.id))
        assert Path(record.final_file).is_file()
        for job_id in ("no-command", "empty-command", "not-a-list", "bad-json"):
            broken = store.get(job_id)
            assert broken.status == FAILED, job_id
            assert "could not be started" in broken.message and broken.finished_at, (job_id, broken.message)
        assert "no command" in store.get("no-command").message
        assert "settings" in store.get("bad-json").message
        # The job views still open (no crash on what cannot be read) ...
        assert store.get("bad-json").command_args == [] and store.get("bad-json").config_data == {}
        assert worker.command_text(store.get("no-command")) == ""
        # ... and resuming a job whose settings are unreadable is refused with a reason.
        with pytest.raises(ValidationError, match="settings"):
            worker.resume("bad-json")
    finally:
        worker.shutdown(terminate=True)

