"""Gradio's event API may only be handed files this server received as uploads.

A Gradio event names its file inputs by server path (a FileData `path`). Gradio checks that such a path lies in its
upload folder before it opens or copies it, but only once the Blocks is marked as launched, which `launch()` does
and `gr.mount_gradio_app` does not. Left alone, a mounted app opens any file a client names (and copies it into the
upload folder, where the file route serves it). Two independent layers close that:

- `require_uploaded_files(blocks)` switches Gradio's own check on, and verifies that this Gradio version really
  refuses a foreign path through that switch (so an upgrade that renames it fails the start, not silently).
- `UploadedFilesOnly` reads the JSON body of every POST to Gradio's API before Gradio does and refuses (403) any
  FileData whose path is not inside the upload folder, URLs included (the server would fetch them).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

GRADIO_API_PREFIX = "/gradio_api/"
# The largest event body inspected; real events carry file *references* (uploads go to /upload), so a few MiB
# is already generous.
MAX_EVENT_BODY = 16 * 1024 * 1024


def require_uploaded_files(blocks: Any) -> None:
    """Make Gradio refuse event inputs that name files it did not receive as uploads (as after `launch()`)."""
    from gradio import processing_utils
    from gradio.context import LocalContext
    from gradio.exceptions import InvalidPathError

    blocks.has_launched = True
    outside = os.path.abspath(__file__)  # a readable file that is certainly not an upload
    token = LocalContext.blocks.set(blocks)
    try:
        processing_utils._check_allowed(outside, check_in_upload_folder=True)
    except InvalidPathError:
        return
    finally:
        LocalContext.blocks.reset(token)
    raise RuntimeError("This Gradio version accepts server paths as event inputs even when launched; "
                       "refusing to serve the UI. Pin the Gradio version from requirements.txt.")


def foreign_paths(value: Any, upload_dir: Path) -> list[str]:
    """Every FileData path in `value` (any nesting) that is not a file inside `upload_dir` (symlinks resolved)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if _is_file_data(item) and not _inside(item["path"], upload_dir):
                found.append(item["path"])
            stack.extend(item.values())
    return found


def _is_file_data(item: dict[str, Any]) -> bool:
    """Any object with a string `path`: Gradio's image models accept one without `meta` and with extra keys,
    and read the path."""
    return isinstance(item.get("path"), str)


def _inside(path: str, upload_dir: Path) -> bool:
    if not path or "\x00" in path or "://" in path:
        return False
    real = Path(os.path.realpath(os.path.abspath(path)))
    return real != upload_dir and real.is_relative_to(upload_dir)


class UploadedFilesOnly:
    """Refuse (403) a POST to Gradio's API whose JSON names a file outside the upload folder.

    Multipart bodies (the upload route itself, component blobs) carry file *contents*, not paths, and pass."""

    def __init__(self, app: ASGIApp, upload_dir: str | Path):
        self.app = app
        self.upload_dir = Path(os.path.realpath(upload_dir))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or \
                not scope.get("path", "").startswith(GRADIO_API_PREFIX) or _is_multipart(scope):
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        if body is None:
            await _answer(send, 413, "The event body is too large.")
            return
        try:
            payload = json.loads(body) if body.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None  # not JSON: Gradio's routes refuse it themselves
        if foreign_paths(payload, self.upload_dir):
            await _answer(send, 403, "Files must be uploaded to this server first; server paths and URLs are not "
                                     "accepted as inputs.")
            return
        await self.app(scope, _replay(messages, receive), send)


def _is_multipart(scope: Scope) -> bool:
    content_type = dict(scope.get("headers") or ()).get(b"content-type", b"")
    return content_type.split(b";", 1)[0].strip().lower() == b"multipart/form-data"


async def _read_body(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The whole body (None when over `MAX_EVENT_BODY`) and the messages read, to replay to the app."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > MAX_EVENT_BODY:
            return None, messages
        if not message.get("more_body", False):
            break
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request"), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def _answer(send: Send, status: int, text: str) -> None:
    body = json.dumps({"detail": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
