"""Training job history in SQLite (in the data dir), so jobs survive an app restart.

Why SQLite: one file, transactional, readable by the UI while the worker's monitor threads write; a job that was
running when the app died is found at the next start and shown as interrupted (resumable). Each call opens its
own short connection, so any thread may use the store.
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from webui.jobs.sqlite_table import RecordTable, parse_json

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted")
JOB_STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)
FINISHED_STATES = (DONE, FAILED, CANCELLED, INTERRUPTED)
RESUMABLE_STATES = (FAILED, CANCELLED, INTERRUPTED)


@dataclass(frozen=True)
class JobRecord:
    """One training job as the UI shows it."""

    id: str
    name: str
    status: str
    created_at: float
    work_dir: str
    config: str
    command: str = "[]"
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    total_epochs: int = 0
    loss: float | None = None
    its: float | None = None
    eta_s: float | None = None
    message: str = ""
    final_file: str = ""
    last_sample: str = ""
    resumes: int = 0
    cancel_requested: int = 0

    @property
    def config_data(self) -> dict[str, Any]:
        """The job's settings; {} when the stored text is not a JSON object (see `defect`)."""
        data = parse_json(self.config)
        return data if isinstance(data, dict) else {}

    @property
    def config_readable(self) -> bool:
        return isinstance(parse_json(self.config), dict)

    @property
    def command_args(self) -> list[str]:
        """The child's command line; [] when none is stored or it is not a list of strings (see `defect`)."""
        args = parse_json(self.command)
        return list(args) if isinstance(args, list) and all(isinstance(a, str) for a in args) else []

    @property
    def defect(self) -> str:
        """Why this job cannot be started ("" when it can): a row left half written by a crash, by an older
        version or by a hand edit. Readers get empty values instead of exceptions, so one such row never breaks
        the job list or the queue behind it."""
        if not self.config_readable:
            return "its stored settings are not readable"
        if not self.command_args:
            return "it has no command" if self.command in (None, "", "[]") else "its stored command is not readable"
        return ""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class JobStore:
    """CRUD over the `jobs` table. Unknown columns in updates are refused (typos must not pass silently)."""

    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self._table = RecordTable(self.db_path, "jobs", JobRecord)
        self._connect = self._table.connect

    def create(self, name: str, config: dict[str, Any], work_dir: Path, job_id: str | None = None,
               command: list[str] | None = None) -> JobRecord:
        """A queued job, written whole in one statement: a crash leaves the complete job or none."""
        record = JobRecord(id=job_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6], name=name,
                           status=QUEUED, created_at=time.time(), work_dir=str(work_dir),
                           config=json.dumps(config), command=json.dumps(list(command or [])))
        data = record.as_dict()
        with self._connect() as conn:
            conn.execute(f"INSERT INTO jobs ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})",
                         list(data.values()))
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row is not None else None

    def list(self, limit: int = 100) -> list[JobRecord]:
        """Newest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_record(row) for row in rows]

    def with_status(self, *statuses: str) -> list[JobRecord]:
        """Oldest first (the queue order)."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT * FROM jobs WHERE status IN ({', '.join('?' * len(statuses))}) "
                                "ORDER BY created_at", statuses).fetchall()
        return [_record(row) for row in rows]

    def update(self, job_id: str, **values: Any) -> None:
        unknown = set(values) - set(self._table.columns) | ({"id"} & set(values))
        if unknown:
            raise ValueError(f"Cannot update job fields {sorted(unknown)}")
        if "status" in values and values["status"] not in JOB_STATES:
            raise ValueError(f"Unknown job status {values['status']!r}")
        if not values:
            return
        with self._connect() as conn:
            conn.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                         [*values.values(), job_id])

    def delete(self, job_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


_FIELDS = frozenset(f.name for f in fields(JobRecord))


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(**{key: row[key] for key in row.keys() if key in _FIELDS})
