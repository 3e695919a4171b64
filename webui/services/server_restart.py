"""Restarting the server process from the UI ("Apply and restart UI"), as A1111 does to load another set of
extensions.

Why a new process: extensions add tabs, scripts, routes, settings and hooks while the app is built, and Python
cannot unload a module an extension imported; a fresh process builds everything from the saved choices. Only a
server started by `app.main` can restart (it owns the process and re-executes the same command line after a clean
stop); an app built in-process (tests, an embedding program) has no `stop` attached, and a request says to restart
the server by hand.

What a restart keeps: the running generation finishes (nothing new starts meanwhile) and queued tasks stay in the
task store, so they run after the restart. A running training job would be cut off, so the restart is refused
until it ends.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from webui.core.errors import ValidationError
from webui.jobs.executor import GpuExecutor

log = logging.getLogger(__name__)

MANUAL_NOTE = "Saved to config.json; restart the server to apply (this server was not started by launch.py)."
RESTART_MARK = "The server restarts now"
RESTARTING_NOTE = f"Saved. {RESTART_MARK} (after the running generation, if any); this page reloads when it is back."
POLL_SECONDS = 0.2


class ServerRestart:
    """The restart switch. `app.main` attaches how to stop the server; `requested` tells it, once the server has
    stopped, to start again instead of exiting."""

    def __init__(self, executor: GpuExecutor, training_running: Callable[[], list]):
        self._executor = executor
        self._training_running = training_running
        self._stop: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.requested = threading.Event()

    @property
    def available(self) -> bool:
        return self._stop is not None

    def attach(self, stop: Callable[[], None]) -> None:
        """Called by `app.main` with the server's stop (uvicorn's `should_exit`)."""
        self._stop = stop

    def request(self) -> str:
        """Stop the server for a restart once the running job is done; the note says what happens."""
        if self._stop is None:
            return MANUAL_NOTE
        running = self._training_running()
        if running:
            raise ValidationError(f"A training job is running ({len(running)}); restart after it ends, or cancel "
                                  "it first. The choice is saved.")
        with self._lock:
            if not self.requested.is_set():
                self.requested.set()
                threading.Thread(target=self._stop_when_idle, name="server-restart", daemon=True).start()
        return RESTARTING_NOTE

    def _stop_when_idle(self) -> None:
        self._executor.close(interrupt=False)  # nothing new starts; queued tasks stay queued in the store
        while self._executor.busy:
            time.sleep(POLL_SECONDS)
        log.info("Restarting the server to apply the extension changes.")
        assert self._stop is not None
        self._stop()
