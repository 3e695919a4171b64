"""The extension registry of one app: which extensions exist, which are on, what each registered, and the calls
that run their hooks (each guarded: a hook that raises switches its extension off for the session).

Why an object built in `build_services` and passed to the services that run hooks: two apps in one process have
two registries, and nothing reaches for a module global.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webui.engine.generation.job_hooks import JobHooks
from webui.extensions.api import ExtensionContext, ImageInfo, Manifest, Registrations, StepInfo
from webui.extensions.isolation import Failure, Guard

log = logging.getLogger("extensions")


@dataclass
class ExtensionRecord:
    """One extension folder: its manifest, where it is, whether the user enabled it (config.json), its context
    once loaded, and the failure that switched it off (if any)."""

    manifest: Manifest
    path: Path
    builtin: bool
    enabled: bool
    context: ExtensionContext | None = None
    failure: Failure | None = None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def active(self) -> bool:
        """Loaded and not failed: its hooks run and its tabs, scripts and routes are built."""
        return self.enabled and self.context is not None and self.failure is None

    @property
    def status(self) -> str:
        if self.failure is not None:
            return f"failed ({self.failure.stage})"
        if not self.enabled:
            return "disabled"
        return "active" if self.context is not None else "not loaded"


class ExtensionRegistry:
    """The extensions of one app, in hook order."""

    def __init__(self) -> None:
        self._records: dict[str, ExtensionRecord] = {}
        self._lock = threading.Lock()
        self.guard = Guard(self.record_failure)

    # --- records ---------------------------------------------------------------------------------------------
    def add(self, record: ExtensionRecord) -> None:
        self._records[record.name] = record

    def set_order(self, names: list[str]) -> None:
        """Reorder the records: `names` first (hook order), the rest after them by name."""
        ordered = {name: self._records[name] for name in names if name in self._records}
        ordered.update({name: self._records[name] for name in sorted(self._records) if name not in ordered})
        self._records = ordered

    def records(self) -> list[ExtensionRecord]:
        return list(self._records.values())

    def record(self, name: str) -> ExtensionRecord | None:
        return self._records.get(name)

    def active(self) -> list[ExtensionContext]:
        return [r.context for r in self._records.values() if r.active and r.context is not None]

    def registrations(self) -> Iterator[tuple[str, Registrations]]:
        """(name, registrations) of every active extension, in order (what the UI and API build from)."""
        for context in self.active():
            yield context.name, context.registrations

    def record_failure(self, failure: Failure) -> None:
        """Switch the extension off for the session (the first failure is the one kept and shown)."""
        with self._lock:
            record = self._records.get(failure.extension)
            if record is not None and record.failure is None:
                record.failure = failure

    def has_hooks(self, kind: str) -> bool:
        """Whether any active extension registered a `kind` hook (callers skip work otherwise)."""
        return bool(self._hooks(kind))

    def _hooks(self, kind: str) -> list[tuple[str, Callable[..., Any]]]:
        return [(context.name, fn) for context in self.active() for fn in context.registrations.hooks[kind]]

    def _still_active(self, name: str) -> bool:
        record = self._records.get(name)
        return record is not None and record.active

    # --- hooks -----------------------------------------------------------------------------------------------
    def before_generation(self, request: Any, warnings: list[str]) -> list[Any]:
        """`request` through every before_generation hook, in order; a hook may return a list (the job is split).
        A hook that fails or returns something else is dropped with its whole effect, and a warning added."""
        requests = [request]
        for name, fn in self._hooks("before_generation"):
            if not self._still_active(name):
                continue
            produced: list[Any] = []
            for item in requests:
                out = self.guard.call(name, "before_generation hook", fn, item)
                if out is Guard.failed:
                    break
                parts = list(out) if isinstance(out, list | tuple) else [out]
                if not parts or not all(isinstance(part, type(request)) for part in parts):
                    self.record_failure(Failure(name, "before_generation hook", "it returned "
                                                f"{type(out).__name__}, not a request or a list of requests"))
                    break
                produced.extend(parts)
            else:
                requests = produced
                continue
            warnings.append(self._failure_note(name))
        return requests

    def job_hooks(self, request: Any, index_offset: int, warnings: list[str]) -> JobHooks | None:
        """The step/image/infotext calls for one resolved part of a job (`index_offset`: images before it in the
        job); None when no extension has such hooks. Failures are noted in `warnings` (once per extension)."""
        steps, images, fields = (self._hooks(kind) for kind in ("on_step", "after_image", "infotext_fields"))
        if not (steps or images or fields):
            return None
        total = request.steps + ((request.hr_second_pass_steps or request.steps)
                                 if request.enable_hr and request.img2img is None else 0)
        call = _Caller(self, warnings)

        def on_step(done: int) -> None:
            info = StepInfo(step=done, total_steps=total, request=request, hires=done > request.steps)
            for name, fn in steps:
                call(name, "on_step hook", fn, info)

        def after_image(image: Any, index: int, seed: int, subseed: int) -> Any:
            info = ImageInfo(index_offset + index, seed, subseed, request.prompt, request.negative_prompt, request)
            for name, fn in images:
                out = call(name, "after_image hook", fn, image, info)
                if out is not Guard.failed and out is not None and not hasattr(out, "size"):
                    self.record_failure(Failure(name, "after_image hook", f"it returned {type(out).__name__}, "
                                                "not an image"))
                    call.note(name)
                elif out is not Guard.failed and out is not None:
                    image = out
            return image

        def infotext_fields(index: int) -> dict[str, object]:
            merged: dict[str, object] = {}
            for name, fn in fields:
                out = call(name, "infotext_fields hook", fn, request, index_offset + index)
                if out is not Guard.failed and out:
                    merged.update({str(key): value for key, value in dict(out).items()})
            return merged

        return JobHooks(on_step=on_step if steps else None, after_image=after_image if images else None,
                        infotext_fields=infotext_fields if fields else None)

    def _failure_note(self, name: str) -> str:
        record = self._records.get(name)
        failure = record.failure if record is not None else None
        return failure.warning() if failure is not None else f"Extension '{name}' was skipped."


class _Caller:
    """Guarded hook calls for one job part: skips extensions already off, notes each failure once."""

    def __init__(self, registry: ExtensionRegistry, warnings: list[str]):
        self._registry = registry
        self._warnings = warnings
        self._noted: set[str] = set()

    def __call__(self, name: str, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        if not self._registry._still_active(name):
            return Guard.failed
        out = self._registry.guard.call(name, stage, fn, *args)
        if out is Guard.failed:
            self.note(name)
        return out

    def note(self, name: str) -> None:
        if name not in self._noted:
            self._noted.add(name)
            self._warnings.append(self._registry._failure_note(name))

