"""Slow down password guessing: after a few failed logins from one client address, its next attempts get 429
until the oldest failure is old enough.

Two doors are counted apart: the UI's login form (Gradio's `POST /login`, which answers 400 to a wrong password)
and HTTP Basic auth (`--api-auth`; any request that carries an `Authorization` header and is answered 401). A
request without credentials (a browser's first try before it asks for a password) is not a failed login.

Why per address and not per user name: a guesser tries many names; a per-name lock would also let anyone lock the
real user out. Attempts still in flight count against the limit, so firing many guesses at once gains nothing.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
MAX_TRACKED = 4096  # client addresses remembered at most (the oldest are forgotten first)
LOGIN_PATHS = ("/login", "/login/")


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class FailedLoginThrottle:
    """Failed-login bookkeeping for one door: `wait(client)` says how many seconds the client must wait before its
    next attempt (0: go ahead)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic, max_tracked: int = MAX_TRACKED):
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_tracked = max_tracked
        self._clients: dict[str, _Record] = {}

    def wait(self, client: str) -> float:
        record = self._record(client)
        if len(record.failures) + record.in_flight < self.max_failures:
            return 0.0
        if not record.failures:
            return 1.0  # only attempts in flight: their answers are due any moment
        return max(1.0, record.failures[0] + self.window - self.clock())

    def started(self, client: str) -> None:
        self._record(client).in_flight += 1

    def finished(self, client: str, failed: bool) -> None:
        record = self._record(client)
        record.in_flight = max(0, record.in_flight - 1)
        if failed:
            record.failures.append(self.clock())

    def _record(self, client: str) -> _Record:
        now = self.clock()
        record = self._clients.pop(client, None) or _Record()
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()
        self._clients[client] = record  # re-inserted: the dict keeps the most recently seen clients last
        while len(self._clients) > self.max_tracked:
            del self._clients[next(iter(self._clients))]
        return record


class LoginThrottleMiddleware:
    """Answer 429 (with `Retry-After`) to login attempts from a client with too many recent failures."""

    def __init__(self, app: ASGIApp, ui: FailedLoginThrottle | None = None, api: FailedLoginThrottle | None = None):
        self.app = app
        self.ui = ui or FailedLoginThrottle()
        self.api = api or FailedLoginThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self._door(scope)
        if door is None:
            await self.app(scope, receive, send)
            return
        throttle, is_failure = door
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = throttle.wait(client)
        if wait > 0:
            await _too_many(send, math.ceil(wait))
            return
        failed = False

        async def watch(message: Message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start":
                failed = is_failure(message)
            await send(message)

        throttle.started(client)
        try:
            await self.app(scope, receive, watch)
        finally:
            throttle.finished(client, failed=failed)

    def _door(self, scope: Scope) -> tuple[FailedLoginThrottle, Callable[[Message], bool]] | None:
        if scope["type"] != "http":
            return None
        if scope["method"] == "POST" and scope.get("path") in LOGIN_PATHS:
            return self.ui, _wrong_ui_password
        if any(name.lower() == b"authorization" for name, _ in scope.get("headers") or ()):
            return self.api, _basic_auth_refused
        return None


def _wrong_ui_password(start: Message) -> bool:
    """Gradio's login form answers 400 to wrong credentials."""
    return start["status"] == 400


def _basic_auth_refused(start: Message) -> bool:
    """A 401 asking for Basic credentials: the credentials sent were wrong (a 401 from elsewhere, such as the UI's
    own login check, says nothing about them)."""
    return start["status"] == 401 and any(
        name.lower() == b"www-authenticate" and value.lower().startswith(b"basic")
        for name, value in start.get("headers") or ())


async def _too_many(send: Send, seconds: int) -> None:
    body = json.dumps({"detail": f"Too many failed logins from this address; try again in {seconds} s."}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(seconds).encode())]})
    await send({"type": "http.response.body", "body": body})
