"""Generation tasks in SQLite: the one queue every txt2img/img2img/Extras request from the UI or the API goes into.

Why in the training job store's database (`<data>/training/jobs.sqlite`, WAL): one file in the data folder holds
everything that waits for or uses the device, survives a restart or a crash, and is readable by the UI while the
executor thread writes. Each call opens its own short connection, so any thread may use the store. A task's
files (its input images, result images the output writer did not keep) live in `<files_dir>/<id>/`.

Order: `position` (smaller runs first); reordering swaps positions among pending tasks. States: queued, paused
(a task held back by the user; the queue as a whole can be paused too, `queue_paused`), running, done, failed,
cancelled.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from webui.jobs.sqlite_table import RecordTable, parse_json

QUEUED, PAUSED, RUNNING, DONE, FAILED, CANCELLED = "queued", "paused", "running", "done", "failed", "cancelled"
TASK_STATES = (QUEUED, PAUSED, RUNNING, DONE, FAILED, CANCELLED)
PENDING_STATES = (QUEUED, PAUSED)
FINISHED_STATES = (DONE, FAILED, CANCELLED)
CRASH_MESSAGE = "The server stopped while this task ran (a crash or a kill); nothing it made is kept as done."


@dataclass(frozen=True)
class TaskRecord:
    """One task as stored. `request` is the frozen request as JSON (`webui.core.task_codec`), `images` the result
    files as a JSON list, `result` what the result says besides its images (infotexts, seeds, model ...)."""

    id: str
    kind: str
    state: str
    position: int
    created_at: float
    request: str
    summary: str = ""
    source: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0
    images: str = "[]"
    result: str = "{}"
    error: str = ""
    retries: int = 0

    @property
    def image_paths(self) -> list[str]:
        value = parse_json(self.images)
        return [str(item) for item in value] if isinstance(value, list) else []

    @property
    def result_data(self) -> dict[str, Any]:
        value = parse_json(self.result)
        return value if isinstance(value, dict) else {}

    @property
    def request_data(self) -> Any:
        return parse_json(self.request)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_META_SCHEMA = "CREATE TABLE IF NOT EXISTS task_queue_meta (key TEXT PRIMARY KEY, value TEXT)"
_FIELDS = frozenset(f.name for f in fields(TaskRecord))


class TaskStore:
    """CRUD over the `tasks` table plus the queue-wide pause flag."""

    def __init__(self, db_path: Path, files_dir: Path):
        self.db_path = Path(db_path)
        self.files_dir = Path(files_dir)
        self._table = RecordTable(self.db_path, "tasks", TaskRecord, extra_schema=(_META_SCHEMA,))
        self._connect = self._table.connect

    @staticmethod
    def new_id() -> str:
        return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]

    def folder(self, task_id: str) -> Path:
        """Where a task's files live (created on demand)."""
        path = self.files_dir / task_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def create(self, task_id: str, kind: str, request: Any, summary: str = "", source: str = "") -> TaskRecord:
        """A queued task at the end of the queue, written whole in one statement."""
        with self._connect() as conn:
            last = conn.execute("SELECT MAX(position) FROM tasks").fetchone()[0]
            record = TaskRecord(id=task_id, kind=kind, state=QUEUED, position=(last or 0) + 1,
                                created_at=time.time(), request=json.dumps(request), summary=summary, source=source)
            data = record.as_dict()
            conn.execute(f"INSERT INTO tasks ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})",
                         list(data.values()))
        return record

    def get(self, task_id: str) -> TaskRecord | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _record(row) if row is not None else None

    def list(self, limit: int = 200) -> list[TaskRecord]:
        """Pending and running tasks in queue order, then the finished ones, newest first."""
        with self._connect() as conn:
            open_rows = conn.execute("SELECT * FROM tasks WHERE state IN (?, ?, ?) ORDER BY "
                                     "state != 'running', position", (RUNNING, *PENDING_STATES)).fetchall()
            done_rows = conn.execute(f"SELECT * FROM tasks WHERE state IN ({', '.join('?' * len(FINISHED_STATES))})"
                                     " ORDER BY finished_at DESC LIMIT ?", (*FINISHED_STATES, limit)).fetchall()
        return [_record(row) for row in (*open_rows, *done_rows)]

    def with_state(self, *states: str) -> list[TaskRecord]:
        """Tasks in these states, in queue order."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT * FROM tasks WHERE state IN ({', '.join('?' * len(states))}) "
                                "ORDER BY position", states).fetchall()
        return [_record(row) for row in rows]

    def claim_next(self) -> TaskRecord | None:
        """The first queued task, marked running in the same transaction (so it starts exactly once)."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE state = ? ORDER BY position LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            started = time.time()
            conn.execute("UPDATE tasks SET state = ?, started_at = ?, progress = 0 WHERE id = ?",
                         (RUNNING, started, row["id"]))
        return replace(_record(row), state=RUNNING, started_at=started, progress=0.0)

    def update(self, task_id: str, **values: Any) -> None:
        unknown = set(values) - _FIELDS | ({"id"} & set(values))
        if unknown:
            raise ValueError(f"Cannot update task fields {sorted(unknown)}")
        if "state" in values and values["state"] not in TASK_STATES:
            raise ValueError(f"Unknown task state {values['state']!r}")
        if values:
            with self._connect() as conn:
                conn.execute(f"UPDATE tasks SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                             [*values.values(), task_id])

    def set_state_if(self, task_id: str, allowed: tuple[str, ...], **values: Any) -> bool:
        """Update only while the task is in one of `allowed` states (a cancel must not undo a start)."""
        with self._connect() as conn:
            cursor = conn.execute(f"UPDATE tasks SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ? AND "
                                  f"state IN ({', '.join('?' * len(allowed))})", [*values.values(), task_id, *allowed])
            return cursor.rowcount == 1

    def move(self, task_id: str, offset: int) -> bool:
        """Swap a pending task with its pending neighbour (offset -1: earlier, +1: later); False at either end."""
        with self._connect() as conn:
            rows = conn.execute("SELECT id, position FROM tasks WHERE state IN (?, ?) ORDER BY position",
                                PENDING_STATES).fetchall()
            ids = [row["id"] for row in rows]
            if task_id not in ids:
                return False
            index = ids.index(task_id)
            other = index + offset
            if not 0 <= other < len(ids):
                return False
            mine, theirs = rows[index]["position"], rows[other]["position"]
            conn.execute("UPDATE tasks SET position = ? WHERE id = ?", (theirs, task_id))
            conn.execute("UPDATE tasks SET position = ? WHERE id = ?", (mine, rows[other]["id"]))
        return True

    def delete(self, task_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
        shutil.rmtree(self.files_dir / task_id, ignore_errors=True)

    def prune(self, keep: int) -> int:
        """Forget finished tasks beyond the newest `keep` (their rows and their own folder; images the output
        writer saved stay in the outputs folder). Returns how many went."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT id FROM tasks WHERE state IN ({', '.join('?' * len(FINISHED_STATES))}) "
                                "ORDER BY finished_at DESC LIMIT -1 OFFSET ?", (*FINISHED_STATES, keep)).fetchall()
        for row in rows:
            self.delete(row["id"])
        return len(rows)

    def queue_paused(self) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM task_queue_meta WHERE key = 'paused'").fetchone()
        return row is not None and row["value"] == "1"

    def set_queue_paused(self, paused: bool) -> None:
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO task_queue_meta (key, value) VALUES ('paused', ?)",
                         ("1" if paused else "0",))

    def recover(self, retry_once: bool) -> list[str]:
        """At start-up: a task still marked running was cut off by a crash. It becomes failed, or queued again at
        the front when `retry_once` and it was not retried before. Returns the ids it touched."""
        touched = []
        for record in self.with_state(RUNNING):
            if retry_once and record.retries < 1:
                self.update(record.id, state=QUEUED, retries=record.retries + 1, started_at=None, progress=0.0,
                            error="Retried after the server stopped while it ran.")
            else:
                self.update(record.id, state=FAILED, finished_at=time.time(), error=CRASH_MESSAGE)
            touched.append(record.id)
        return touched


def _record(row: sqlite3.Row) -> TaskRecord:
    values = {key: row[key] for key in row.keys() if key in _FIELDS}
    defaults = {"images": "[]", "result": "{}", "error": "", "summary": "", "source": "", "progress": 0.0,
                "retries": 0}
    values.update({key: value for key, value in defaults.items() if values.get(key) is None})
    return TaskRecord(**values)
