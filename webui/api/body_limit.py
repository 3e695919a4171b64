"""A cap on the size of every request body, for the API and the UI alike.

Why a pure ASGI middleware: it sees the body as the server receives it, chunk by chunk, so it can refuse a
declared `Content-Length` before reading a byte and stop a chunked upload (no length declared) at the first chunk
over the limit, where a route or `BaseHTTPMiddleware` would only see the body once it had all been read into
memory. Everything else passes through untouched (streaming responses, WebSockets).

Why 413 and not 422: the body is refused before it is parsed, so there is nothing "unprocessable" to report;
413 Payload Too Large is what HTTP defines for it, and clients, proxies and retry logic know not to send the
same body again. The answer has the API's error shape (`{"detail": ...}`) and closes the connection, so the
rest of an oversized body is never read.

Why outermost: a middleware outside it that reads bodies (the Gradio event guard) would wait for, and buffer, an
oversized body before it was capped; so this one comes first and adds the security headers to its own answer.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webui.api.security import SECURITY_HEADERS
from webui.core.limits import LIMITS, byte_text

log = logging.getLogger(__name__)


def too_large_message(limit: int) -> str:
    return (f"The request body is larger than {byte_text(limit)}, the most this server accepts. Send smaller or "
            f"fewer images.")


async def _send_too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(limit)}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed length before we are called
    return None


@dataclass
class _BodyCount:
    """One request's state: bytes received so far, whether it was refused, whether the app began answering."""

    limit: int
    received: int = 0
    refused: bool = False
    answered: bool = False


class BodySizeLimit:
    """Refuse request bodies over `limit` bytes with 413: at once when `Content-Length` says so, else as soon as
    the received chunks pass it (the app then sees a disconnect, and whatever it answers is dropped)."""

    def __init__(self, app: ASGIApp, limit: int = LIMITS.max_request_bytes):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.limit:
            log.warning("Refused a %s-byte request body for %s (limit %s).", declared, scope.get("path"), self.limit)
            await _send_too_large(send, self.limit)
            return
        count = _BodyCount(self.limit)

        async def counted_receive() -> Message:
            if count.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                count.received += len(message.get("body", b""))
                if count.received > count.limit:
                    count.refused = True
                    log.warning("Refused a request body over %s bytes for %s.", count.limit, scope.get("path"))
                    if not count.answered:
                        count.answered = True
                        await _send_too_large(send, count.limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if count.refused:
                return  # the 413 went out already; the app's own answer to the disconnect is dropped
            if message["type"] == "http.response.start":
                count.answered = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not count.refused:
                raise
            # the app failed on the disconnect it was shown: expected, and already answered with 413


def install_limits(app: Starlette, limit: int = LIMITS.max_request_bytes) -> None:
    """Add the body-size cap to `app` (before it starts), outside the middlewares added before it."""
    app.add_middleware(BodySizeLimit, limit=limit)
