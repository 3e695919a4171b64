"""Progress events of a training run, written as JSON lines.

Why a file: the trainer runs in its own process (or in the foreground CLI); a JSONL file is the one channel that
survives the parent dying, can be replayed after an app restart (the loss plot of a finished job), and needs no
shared memory. Each line is one event: `{"type": "step", "step": 3, "loss": 0.12, ...}`.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STARTED, STEP, EPOCH, SAMPLE, SAVED, STATE, NOTE, DONE, FAILED, CANCELLED = (
    "started", "step", "epoch", "sample", "saved", "state", "note", "done", "failed", "cancelled")
FINAL_TYPES = (DONE, FAILED, CANCELLED)

Listener = Callable[[dict[str, Any]], None]


class EventSink:
    """Appends events to a JSONL file (flushed per line) and passes them to optional listeners (console)."""

    def __init__(self, path: Path | None = None, listeners: tuple[Listener, ...] = ()):
        self.path = path
        self.listeners = listeners
        self._handle = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "time": round(time.time(), 3), **fields}
        if self._handle is not None:
            self._handle.write(json.dumps(event) + "\n")
            self._handle.flush()
            if kind in FINAL_TYPES:
                os.fsync(self._handle.fileno())
        for listener in self.listeners:
            listener(event)
        return event

    def note(self, message: str) -> None:
        log.info("%s", message)
        self.emit(NOTE, message=message)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete event lines from byte `offset` on, and the offset to continue from (a half-written last line is
    left for the next call)."""
    if not path.is_file():
        return [], offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("Skipping a corrupt event line in %s", path)
    return events, offset + end


def iter_events(path: Path) -> Iterator[dict[str, Any]]:
    yield from read_events(path)[0]


class StopFlag:
    """Cooperative cancel: the parent creates a flag file; the trainer checks it between optimizer steps."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._set = False

    def request(self) -> None:
        self._set = True
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()

    def __call__(self) -> bool:
        return self._set or (self.path is not None and self.path.exists())
