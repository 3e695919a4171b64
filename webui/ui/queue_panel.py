"""The Queue tab: every generation task (pending, running, finished) with its parameters and thumbnails, the
training jobs beside them, and what waits for what; buttons move, pause, resume and cancel a pending task, or pause
the whole queue. A timer refreshes it while the tab is open.

Why a table of HTML with inline thumbnails: it reads the same on a phone and a desktop, needs no file route (the
thumbnails are tiny data URIs made once per file), and one refresh is one small update."""
from __future__ import annotations

import base64
import html
import io
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from webui.core.errors import WebUIError
from webui.services.task_service import TaskService, TaskView

REFRESH_SECONDS = 2.0
THUMB_SIDE = 64
SHOWN_TASKS = 60
CSS = """
#queue_table table { width: 100%; border-collapse: collapse; font-size: 0.9em; }
#queue_table td, #queue_table th { padding: 4px 6px; border-bottom: 1px solid var(--border-color-primary);
  vertical-align: top; text-align: left; }
#queue_table img { width: 48px; height: 48px; object-fit: contain; image-rendering: pixelated; }
#queue_table .summary { overflow-wrap: anywhere; }
"""


class Thumbnails:
    """Small data-URI thumbnails of result files, made once per file (bounded, oldest dropped)."""

    def __init__(self, limit: int = 400):
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    def __call__(self, path: str) -> str:
        if path not in self._cache:
            try:
                with Image.open(path) as image:
                    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
                    buffer = io.BytesIO()
                    image.convert("RGB").save(buffer, format="PNG")
            except OSError:
                return ""
            self._cache[path] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        return self._cache[path]


def _when(stamp: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else ""


def task_rows_html(views: list[TaskView], thumbnail: Callable[[str], str]) -> str:
    """The task table: state, kind and parameters, progress or error, times, thumbnails of the results."""
    if not views:
        return "<p>No tasks yet: Generate in txt2img/img2img, or POST to /sdapi/v1/queue/txt2img.</p>"
    rows = []
    for view in views[:SHOWN_TASKS]:
        progress = f"{view.progress * 100:.0f}%" if view.state == "running" else html.escape(view.error)
        thumbs = "".join(f'<img src="{uri}" alt="result {index + 1}">' for index, path in enumerate(view.images[:4])
                         if (uri := thumbnail(path)))
        rows.append(f"<tr data-task='{html.escape(view.id)}'><td><b>{view.state}</b></td><td>{view.kind}</td>"
                    f"<td class='summary'>{html.escape(view.summary)}<br><small>{html.escape(view.id)}</small></td>"
                    f"<td>{progress}</td><td>{_when(view.created_at)}<br>{_when(view.finished_at)}</td>"
                    f"<td>{thumbs}</td></tr>")
    head = ("<tr><th>State</th><th>Kind</th><th>Parameters</th><th>Progress / note</th><th>Queued / ended</th>"
            "<th>Results</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def training_rows_html(service: TaskService) -> str:
    """The training jobs (their own queue, in child processes) next to the tasks."""
    jobs = service.training_jobs()
    if not jobs:
        return ""
    rows = "".join(f"<tr><td><b>{html.escape(job.status)}</b></td><td>{html.escape(job.name)}</td>"
                   f"<td>{job.step}/{job.total_steps}</td><td>{html.escape(job.message or '')}</td></tr>"
                   for job in jobs)
    return f"<h4>Training jobs</h4><table><tr><th>State</th><th>Name</th><th>Step</th><th>Note</th></tr>{rows}</table>"


def task_choices(views: list[TaskView]) -> list[tuple[str, str]]:
    """The tasks the buttons can act on (pending and running), labelled for a dropdown."""
    return [(f"{view.state}: {view.summary[:60]} ({view.id[-8:]})", view.id) for view in views
            if view.state in ("queued", "paused", "running")]


@dataclass(frozen=True)
class QueueWidgets:
    status: gr.Markdown
    table: gr.HTML
    training: gr.HTML
    task: gr.Dropdown
    message: gr.Markdown

    def outputs(self) -> list[Any]:
        return [self.status, self.table, self.training, self.task, self.message]


def build_queue_panel(service: TaskService) -> QueueWidgets:
    """Lay out the Queue tab and wire its buttons and timer."""
    thumbnails = Thumbnails()
    status = gr.Markdown("", elem_id="queue_status")
    with gr.Row():
        task = gr.Dropdown(label="Pending task", choices=[], value=None, elem_id="queue_task", scale=3,
                           allow_custom_value=True)
        refresh = gr.Button("Refresh", elem_id="queue_refresh", scale=0, min_width=80)
    with gr.Row():
        buttons = {name: gr.Button(label, elem_id=f"queue_{name}", size="sm", min_width=60)
                   for name, label in (("up", "Up"), ("down", "Down"), ("pause", "Pause"), ("resume", "Resume"),
                                       ("cancel", "Cancel"))}
    with gr.Row():
        pause_all = gr.Button("Pause queue", elem_id="queue_pause_all", size="sm")
        resume_all = gr.Button("Resume queue", elem_id="queue_resume_all", size="sm")
    message = gr.Markdown("", elem_id="queue_message")
    table = gr.HTML("", elem_id="queue_table")
    training = gr.HTML("", elem_id="queue_training")
    widgets = QueueWidgets(status, table, training, task, message)
    _wire(service, widgets, thumbnails, buttons, refresh, pause_all, resume_all)
    return widgets


def _wire(service: TaskService, widgets: QueueWidgets, thumbnails: Thumbnails, buttons: dict[str, gr.Button],
          refresh: gr.Button, pause_all: gr.Button, resume_all: gr.Button) -> None:
    def show(selected: str | None, note: str = "") -> tuple[Any, ...]:
        views = service.tasks()
        choices = task_choices(views)
        keep = selected if selected in {value for _, value in choices} else None
        paused = " **The queue is paused.**" if service.queue_paused() else ""
        return (f"{service.waits_for()}{paused}", task_rows_html(views, thumbnails), training_rows_html(service),
                gr.update(choices=choices, value=keep), note)

    def act(action: Callable[[str], bool], done: str, refused: str) -> Callable[[str | None], tuple[Any, ...]]:
        def handler(selected: str | None) -> tuple[Any, ...]:
            if not selected:
                return show(selected, "Choose a pending task first.")
            try:
                ok = action(selected)
            except WebUIError as exc:
                return show(selected, f"**Error:** {exc}")
            return show(selected, done if ok else refused)
        return handler

    actions = {"up": (lambda tid: service.move(tid, -1), "Moved up.", "It is already first (or not pending)."),
               "down": (lambda tid: service.move(tid, 1), "Moved down.", "It is already last (or not pending)."),
               "pause": (service.pause, "Paused: it keeps its place and waits.", "Only a queued task can pause."),
               "resume": (service.resume, "Resumed.", "Only a paused task can resume."),
               "cancel": (service.cancel, "Cancelled.", "It has finished already.")}
    outputs = widgets.outputs()
    for name, (action, done, refused) in actions.items():
        buttons[name].click(act(action, done, refused), inputs=[widgets.task], outputs=outputs,
                            api_name=f"queue_{name}")
    refresh.click(lambda selected: show(selected), inputs=[widgets.task], outputs=outputs, api_name="queue_refresh")

    def set_paused(paused: bool) -> Callable[[str | None], tuple[Any, ...]]:
        def handler(selected: str | None) -> tuple[Any, ...]:
            (service.pause_queue if paused else service.resume_queue)()
            return show(selected, "Queue paused: no new task starts." if paused else "Queue resumed.")
        return handler

    pause_all.click(set_paused(True), inputs=[widgets.task], outputs=outputs, api_name="queue_pause_all")
    resume_all.click(set_paused(False), inputs=[widgets.task], outputs=outputs, api_name="queue_resume_all")
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(lambda selected: show(selected)[:4], inputs=[widgets.task], outputs=outputs[:4], api_name=False,
               show_progress="hidden")
