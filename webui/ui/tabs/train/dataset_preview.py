"""The Train tab's "Preview dataset" as a user reads it: a summary line, the first pictures with their captions, and
a table of the aspect buckets; the raw summary (the `train_preview` endpoint's JSON) stays for API callers, hidden.

Why a `.then` of its own: `train_preview` keeps its public outputs (JSON, message); the pictures and the table are
drawn from the same form values right after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.services.training_service import TrainingService

PREVIEW_IMAGES = 24


@dataclass(frozen=True)
class DatasetPreview:
    summary_json: gr.JSON  # the service's summary, hidden: the `train_preview` endpoint's first output
    summary: gr.Markdown
    gallery: gr.Gallery
    buckets: gr.Dataframe

    def view_outputs(self) -> list[Any]:
        return [self.summary, self.gallery, self.buckets]


def build_dataset_preview() -> DatasetPreview:
    summary_json = gr.JSON(label="Dataset preview", elem_id="train_preview_json", visible=False)
    summary = gr.Markdown("", elem_id="train_preview_summary")
    gallery = gr.Gallery(label="Dataset images and captions", columns=6, height="auto", object_fit="contain",
                         visible=False, elem_id="train_preview_gallery", interactive=False)
    buckets = gr.Dataframe(headers=["Bucket (WxH)", "Images per epoch"], visible=False, interactive=False,
                           elem_id="train_preview_buckets", label="Aspect buckets")
    return DatasetPreview(summary_json, summary, gallery, buckets)


def summary_markdown(summary: dict[str, Any]) -> str:
    """"240 images in 1 folder (zorb: 240 x 1 repeat) · 30 steps per epoch · 20 epochs · 600 steps" and notes."""
    folders = summary.get("folders") or []
    parts = ", ".join(f"{f['folder']}: {f['images']} x {f['repeats']} repeat{'s' if f['repeats'] != 1 else ''}"
                      for f in folders)
    plural = "s" if len(folders) != 1 else ""
    line = (f"**{summary.get('images', 0)} images** in {len(folders)} folder{plural} ({parts}) · "
            f"{summary.get('steps_per_epoch', 0)} steps per epoch · {summary.get('epochs', 0)} epochs · "
            f"{summary.get('total_steps', 0)} steps in all")
    notes = [str(note) for note in summary.get("notes") or ()]
    return "\n\n".join([line, *notes])


def bucket_rows(summary: dict[str, Any]) -> list[list[Any]]:
    return [[bucket, count] for bucket, count in (summary.get("buckets") or {}).items()]


def wire_preview_view(training: TrainingService, preview_event: Any, form_values: Any, inputs: list[Any],
                      view: DatasetPreview) -> None:
    """After `train_preview`: the summary, the pictures (thumbnails from the service) and the bucket table.
    `form_values(raw)` turns the form's raw values into the preset dict (it may raise `WebUIError`)."""

    def show(summary: dict[str, Any] | None, *raw: Any) -> list[Any]:
        if not summary:
            return ["", gr.update(visible=False, value=None), gr.update(visible=False)]
        try:
            images = training.dataset_preview_images(form_values(raw), PREVIEW_IMAGES)
        except WebUIError as err:
            images = []
            summary = {**summary, "notes": [*summary.get("notes", []), f"Pictures not shown: {err}"]}
        return [summary_markdown(summary), gr.update(value=images, visible=bool(images)),
                gr.update(value=bucket_rows(summary), visible=True)]

    preview_event.then(show, inputs=[view.summary_json, *inputs], outputs=view.view_outputs(),
                       api_name="train_preview_view", show_progress="hidden")
