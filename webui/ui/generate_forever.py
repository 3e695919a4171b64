""""Generate forever": a small toggle next to Generate (A1111 hides it in Generate's right-click menu, which a
phone cannot open). While it is on for a browser session, that session's Generate queues the same settings again
each time a result arrives (a new task, a new -1 seed each time); unticking it stops after the current task, and
Interrupt or an error stops it at once.

Why the switch lives on the server, keyed by Gradio's session hash: Generate's inputs are read once when it is
clicked, so a running handler cannot see the checkbox change; its `.change` event flips the switch instead, and
the handler reads the switch after each task. The Generate endpoint's public inputs stay as they were."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr


class ForeverSwitch:
    """The sessions (Gradio session hashes) that have "Generate forever" on; one per built UI."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._on: set[str] = set()

    def set(self, session: str | None, on: bool) -> None:
        if not session:
            return
        with self._lock:
            (self._on.add if on else self._on.discard)(session)

    def is_on(self, session: str | None) -> bool:
        with self._lock:
            return bool(session) and session in self._on


def build_forever_toggle(tab: str, switch: ForeverSwitch) -> gr.Checkbox:
    """The toggle (placed by the caller next to Generate), wired to `switch` for the clicking session."""
    toggle = gr.Checkbox(label="Generate forever", value=False, elem_id=f"{tab}_generate_forever", container=False)

    def flip(on: bool, request: gr.Request) -> None:
        switch.set(getattr(request, "session_hash", None), bool(on))

    toggle.change(flip, inputs=[toggle], api_name=f"{tab}_generate_forever", show_progress="hidden")
    return toggle


def repeat_while_on(switch: ForeverSwitch, request: Any, run_once: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """`run_once()`'s updates, again and again while the session's switch is on and each run ended well (its
    generator returns True: a result that was not interrupted)."""
    session = getattr(request, "session_hash", None)
    while True:
        finished_well = yield from run_once()
        if not finished_well or not switch.is_on(session):
            return
