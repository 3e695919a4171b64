"""How results, progress and errors read in the UI: small HTML/Markdown snippets shared by every tab."""
from __future__ import annotations

import html
from collections.abc import Sequence

from webui.core.progress import ProgressSnapshot


def progress_html(snapshot: ProgressSnapshot, now: float | None = None) -> str:
    """A1111-like progress text: percentage, step, batch and ETA."""
    if not snapshot.active:
        return ""
    percent = int(snapshot.fraction * 100)
    eta = snapshot.eta_seconds(now)
    eta_text = f" · ETA {eta:.0f}s" if eta is not None else ""
    batch = f" · Batch {snapshot.job_no + 1}/{snapshot.job_count}" if snapshot.job_count > 1 else ""
    queued = f" · {snapshot.queued} queued" if snapshot.queued else ""
    return (f"<div class='progress-text'><progress max='100' value='{percent}'></progress> {percent}% · "
            f"Step {snapshot.sampling_step}/{snapshot.sampling_steps}{batch}{eta_text}{queued}</div>")


def info_html(infotext: str) -> str:
    """The infotext under the gallery, escaped for HTML."""
    return f"<div class='infotext'>{html.escape(infotext).replace(chr(10), '<br>')}</div>" if infotext else ""


def error_markdown(message: str) -> str:
    return f"**Error:** {message}" if message else ""


def notes_markdown(notes: Sequence[str]) -> str:
    """Several short notes for a message area, one per line."""
    return "  \n".join(notes)


def checkpoint_note(model: str | None, model_hash: str | None) -> str:
    """The note shown when the infotext names a checkpoint we do not have."""
    named = model or ""
    if model_hash:
        named = f"{named} [{model_hash}]".strip()
    return f"The infotext's model **{named}** is not in the checkpoint list; kept the current checkpoint."
