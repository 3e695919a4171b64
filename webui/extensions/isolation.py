"""Keeping a failing extension from taking anything else down.

Why a record, not just a log line: the Extensions tab shows the traceback, the generation that hit the error
says so in its warnings, and the extension stays off for the rest of the session (a hook that failed once would
fail again for every image).
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webui.extensions.api import RequestRejected

log = logging.getLogger("extensions")


@dataclass(frozen=True)
class Failure:
    """Why an extension was switched off: where (`stage`: "import", "setup", "after_image hook", ...), a one-line
    message and the full traceback."""

    extension: str
    stage: str
    message: str
    traceback: str = ""

    def warning(self) -> str:
        """The note a generation that hit the failure carries."""
        return (f"Extension '{self.extension}' failed in its {self.stage} ({self.message}) and is disabled for "
                "this session; this generation continued without it.")


def failure_from(extension: str, stage: str, exc: BaseException) -> Failure:
    """A `Failure` for `exc`, logged with its traceback."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    log.error("Extension '%s' failed in its %s and is disabled for this session:\n%s", extension, stage, text)
    return Failure(extension, stage, message, text)


class Guard:
    """Calls extension code; on an exception records the failure through `on_failure` and returns `failed`."""

    failed = object()

    def __init__(self, on_failure: Callable[[Failure], None]):
        self._on_failure = on_failure

    def call(self, extension: str, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RequestRejected:
            raise  # the user's input is wrong, not the extension: the request fails with the message
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any error in extension code must be contained
            self._on_failure(failure_from(extension, stage, exc))
            return Guard.failed
