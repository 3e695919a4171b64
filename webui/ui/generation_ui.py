"""The Generate -> progress -> gallery loop shared by the generation tabs (txt2img and img2img).

Why shared: every generation tab must report bad input, progress, interruption and save failures the same way,
and keep the server serving whatever happens to one request.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Generator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.core.results import GenerationResult
from webui.services.queue_service import QueueService
from webui.ui.formatting import error_markdown, info_html, notes_markdown
from webui.ui.live_preview_html import progress_with_preview

POLL_SECONDS = 0.3


def busy(flag: bool) -> tuple[Any, Any, Any]:
    """Updates for (Generate, Interrupt, Skip): Interrupt and Skip show only while a job runs."""
    return gr.update(visible=not flag), gr.update(visible=flag), gr.update(visible=flag)


def stream_generation(queue: QueueService, outputs_dir: Path,
                      submit: Callable[[], Future]) -> Generator[tuple[Any, ...], None, bool]:
    """Yields updates for (gallery, infotexts, seeds, progress, info, message, generate, interrupt, skip).

    `submit` builds the request and queues it; its `WebUIError`/`ValueError`/`TypeError` become a message (bad
    widget values), as do errors of the job itself. `queue` reports progress; images saved under `outputs_dir` are
    shown from their files (`shown_image`). Returns True when a result came and was not interrupted ("Generate
    forever" goes on only then).
    """
    idle = busy(False)
    try:
        future = submit()
    except (WebUIError, ValueError, TypeError) as exc:
        yield gr.update(), [], [], "", "", error_markdown(str(exc)), *idle
        return
    yield gr.update(), gr.update(), gr.update(), "", "", "", *busy(True)
    while not future.done():
        time.sleep(POLL_SECONDS)
        yield (gr.update(), gr.update(), gr.update(), progress_with_preview(queue.progress(), queue.current_preview()),
               gr.update(), gr.update(), *busy(True))
    try:
        result: GenerationResult = future.result()
    except WebUIError as exc:
        yield gr.update(), [], [], "", "", error_markdown(str(exc)), *idle
        return
    except OSError as exc:  # saving failed: an output folder that cannot be created, a full disk
        yield gr.update(), [], [], "", "", error_markdown(f"Could not save the images: {exc}"), *idle
        return
    images = [(shown_image(outputs_dir, img.path, img.image), f"Seed {img.seed}") for img in result.images]
    notes = list(result.warnings)
    if result.interrupted:
        notes.insert(0, "Interrupted: showing the images made so far.")
    first = result.infotexts[0] if result.infotexts else ""
    yield (images, result.infotexts, result.seeds, "", info_html(first), notes_markdown(notes),
           *idle)
    return not result.interrupted


def shown_image(outputs_dir: Path, path: Path | None, image: Any) -> Any:
    """The saved file when Gradio may serve it (the outputs folder); otherwise the image itself. Why: a custom
    output folder outside `outputs/` is not in Gradio's allowed paths, and serving it must not fail the job."""
    if path is not None and Path(path).resolve().is_relative_to(outputs_dir):
        return str(path)
    return image


def selected_info(texts: list[str], evt: gr.SelectData) -> str:
    """The infotext of the gallery image just selected."""
    index = evt.index if isinstance(evt.index, int) else 0
    return info_html(texts[index] if 0 <= index < len(texts) else "")

