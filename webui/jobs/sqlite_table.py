"""One SQLite table whose columns are a frozen record dataclass's fields: the shared ground of the training job
store and the generation task store (they live in the same database file).

Why one helper: both need the same four things, and two copies had started to drift: the schema derived from the
record, WAL so the UI reads while a worker writes, columns added by later versions migrated in place, and one
connection per operation behind a lock (sqlite3 connections must not cross threads).
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

_SQL_TYPES = {"str": "TEXT", "float": "REAL", "int": "INTEGER", "float | None": "REAL", "int | None": "INTEGER"}


class RecordTable:
    """The `table` of `db_path`, shaped after `record` (the field named `id` is the primary key)."""

    def __init__(self, db_path: Path, table: str, record: type, extra_schema: Sequence[str] = ()):
        self.db_path = Path(db_path)
        self.table = table
        self.columns = {f.name: f for f in fields(record)}
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        columns = ", ".join(f"{name} {self._sql_type(f)}{' PRIMARY KEY' if name == 'id' else ''}"
                            for name, f in self.columns.items())
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
            for statement in extra_schema:
                conn.execute(statement)
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for name, item in self.columns.items():  # columns added by later versions
                if name not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {self._sql_type(item)}")

    @staticmethod
    def _sql_type(item) -> str:
        return _SQL_TYPES[str(item.type)]

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation, committed when the block ends (rolled back on an exception)."""
        with self._lock:
            conn = sqlite3.connect(self.db_path, timeout=30)
            conn.row_factory = sqlite3.Row
            try:
                with conn:
                    yield conn
            finally:
                conn.close()

    def row_values(self, row: sqlite3.Row) -> dict[str, Any]:
        """The row's values for the record's fields (columns the record does not know are skipped)."""
        return {key: row[key] for key in row.keys() if key in self.columns}


def parse_json(text: str | None) -> Any:
    """Parsed JSON, or None for a missing or unreadable value (a row half written by a crash or a hand edit)."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
