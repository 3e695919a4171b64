"""The Extras tab (A1111's upscaling tools): a single image, a batch of files, or a folder ("Batch from directory"
with its own output folder); "Scale by" or "Scale to" (width, height, crop to fit); upscaler 1 and an optional
upscaler 2 blended in with a visibility; the results and their parameters.

Results are saved by the services (`outputs/extras-images`, or the chosen output folder for a directory batch).
"Batch from Directory" names server folders, so it is not shown while server folders are hidden (an exposed server,
A1111's --hide-ui-dir-config); the service refuses it then too.
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from webui.core.errors import ValidationError, WebUIError
from webui.core.limits import check_input_images
from webui.services.queue_service import QueueService
from webui.services.task_service import TaskService
from webui.services.upscale_service import UpscaleService
from webui.ui.components import REFRESH_SYMBOL
from webui.ui.formatting import error_markdown, info_html, progress_html
from webui.ui.generation_ui import POLL_SECONDS, shown_image
from webui.ui.sentinels import NONE as NO_UPSCALER
from webui.ui.tabs.extras.mapping import EXTRAS_RESIZE_MODES, EXTRAS_SOURCES, extras_request

TAB = "extras"


def _build_source_tabs(hide_dir_config: bool, source: gr.Textbox) -> tuple[Any, Any, Any, Any]:
    """Single image, batch of files, or folder (not offered while server folders are hidden); selecting a sub-tab
    records it in `source`."""
    with gr.Tabs(elem_id="mode_extras"):
        with gr.Tab("Single Image", id="extras_single_tab", elem_id="extras_single_tab") as tab_single:
            image = gr.Image(label="Source", type="pil", image_mode="RGB", format="png",
                             sources=["upload", "clipboard"], elem_id="extras_image", height=360)
        with gr.Tab("Batch Process", id="extras_batch_process_tab", elem_id="extras_batch_process_tab") as tab_batch:
            files = gr.File(label="Batch Process", file_count="multiple", file_types=["image"],
                            elem_id="extras_image_batch")
        with gr.Tab("Batch from Directory", id="extras_batch_directory_tab", elem_id="extras_batch_directory_tab",
                    visible=not hide_dir_config) as tab_dir:
            input_dir = gr.Textbox(label="Input directory", elem_id="extras_batch_input_dir",
                                   placeholder="A folder inside the data folder (relative to it)")
            output_dir = gr.Textbox(label="Output directory", elem_id="extras_batch_output_dir",
                                    placeholder="Leave blank to save to the extras folder from Settings")
    for tab, name in zip((tab_single, tab_batch, tab_dir), EXTRAS_SOURCES, strict=True):
        tab.select(_constant(name), outputs=[source], api_name=False)
    return image, files, input_dir, output_dir


def _build_resize_tabs(resize_mode: gr.Textbox) -> tuple[Any, Any, Any, Any]:
    """"Scale by" a factor or "Scale to" a size; selecting a sub-tab records it in `resize_mode`."""
    with gr.Tabs(elem_id="extras_resize_mode_tabs"):
        with gr.Tab("Scale by", id="extras_scale_by_tab", elem_id="extras_scale_by_tab") as tab_by:
            scale_by = gr.Slider(label="Resize", minimum=1.0, maximum=8.0, step=0.05, value=2.0,
                                 elem_id="extras_upscaling_resize")
        with gr.Tab("Scale to", id="extras_scale_to_tab", elem_id="extras_scale_to_tab") as tab_to:
            with gr.Row():
                width = gr.Slider(label="Width", minimum=64, maximum=8192, step=8, value=512,
                                  elem_id="extras_upscaling_resize_w")
                height = gr.Slider(label="Height", minimum=64, maximum=8192, step=8, value=512,
                                   elem_id="extras_upscaling_resize_h")
                crop = gr.Checkbox(label="Crop to fit", value=True, elem_id="extras_upscaling_crop")
    for tab, name in zip((tab_by, tab_to), EXTRAS_RESIZE_MODES, strict=True):
        tab.select(_constant(name), outputs=[resize_mode], api_name=False)
    return scale_by, width, height, crop


def _build_upscalers(upscale: UpscaleService) -> tuple[Any, Any, Any]:
    """Upscaler 1 and 2 (the refresh button re-reads the model folders) and upscaler 2's visibility."""
    names = upscale.upscaler_names()
    with gr.Row():
        upscaler_1 = gr.Dropdown(label="Upscaler 1", choices=names, value="Lanczos", elem_id="extras_upscaler_1")
        upscaler_2 = gr.Dropdown(label="Upscaler 2", choices=names, value=NO_UPSCALER, elem_id="extras_upscaler_2")
        refresh = gr.Button(REFRESH_SYMBOL, elem_id="extras_refresh_upscalers", scale=0, min_width=40)
    visibility = gr.Slider(label="Upscaler 2 visibility", minimum=0.0, maximum=1.0, step=0.001, value=0.0,
                           elem_id="extras_upscaler_2_visibility")

    def on_refresh(first: str, second: str):
        fresh = upscale.upscaler_names()
        return (gr.update(choices=fresh, value=first if first in fresh else "Lanczos"),
                gr.update(choices=fresh, value=second if second in fresh else NO_UPSCALER))

    refresh.click(on_refresh, inputs=[upscaler_1, upscaler_2], outputs=[upscaler_1, upscaler_2],
                  api_name="extras_refresh_upscalers")
    return upscaler_1, upscaler_2, visibility


def build_extras_tab(upscale: UpscaleService, queue: QueueService, outputs_dir: Path,
                     hide_dir_config: bool, tasks: TaskService | None = None) -> dict[str, gr.components.Component]:
    """Build the tab; returns its main widgets by name (for "send to extras" later and for tests). `upscale` runs
    the jobs, `queue` reports their progress, results saved under `outputs_dir` are shown from their files. With
    `tasks`, single images and batches become queue tasks like every generation ("Batch from directory" reads a
    server folder when it runs, so it stays a plain executor job)."""
    source = gr.Textbox(value=EXTRAS_SOURCES[0], visible=False, elem_id="extras_selected_tab")
    resize_mode = gr.Textbox(value=EXTRAS_RESIZE_MODES[0], visible=False, elem_id="extras_resize_mode")
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            image, files, input_dir, output_dir = _build_source_tabs(hide_dir_config, source)
            scale_by, width, height, crop = _build_resize_tabs(resize_mode)
            upscaler_1, upscaler_2, visibility = _build_upscalers(upscale)
            generate = gr.Button("Generate", variant="primary", elem_id="extras_generate")
        with gr.Column(variant="panel"):
            progress = gr.HTML("", elem_id="extras_progress")
            gallery = gr.Gallery(label="Result", columns=4, height="auto", format="png", interactive=False,
                                 elem_id="extras_gallery")
            info = gr.HTML("", elem_id="extras_info")
            message = gr.Markdown("", elem_id="extras_message")

    def run(source_v, image_v, files_v, input_dir_v, output_dir_v, resize_mode_v, scale_v, width_v, height_v,
            crop_v, upscaler_1_v, upscaler_2_v, visibility_v):
        try:
            request = extras_request(resize_mode_v, scale_v, width_v, height_v, crop_v, upscaler_1_v,
                                     upscaler_2_v, visibility_v)
            if source_v == EXTRAS_SOURCES[2]:
                future = upscale.submit_extras_folder(input_dir_v or "", output_dir_v or "", request)
            elif tasks is not None:
                future = tasks.submit_extras(_source_images(source_v, image_v, files_v), request, source="ui").future
            else:
                future = upscale.submit_extras(_source_images(source_v, image_v, files_v), request)
        except (WebUIError, ValueError, TypeError) as exc:
            yield [], "", "", error_markdown(str(exc))
            return
        yield from _stream(queue, outputs_dir, future)

    generate.click(run, inputs=[source, image, files, input_dir, output_dir, resize_mode, scale_by, width, height,
                                crop, upscaler_1, upscaler_2, visibility],
                   outputs=[gallery, progress, info, message], api_name="extras", concurrency_limit=None)
    return {"image": image, "files": files, "source": source, "gallery": gallery}


def _constant(value: str):
    return lambda: value


def _source_images(source: str, image: Any, files: list[Any] | None) -> list[Any]:
    """The images of the selected source; a file that is not an image is a message, not a crash."""
    if source == EXTRAS_SOURCES[1]:
        paths = [getattr(item, "name", item) for item in files or ()]
        if not paths:
            raise ValidationError("Batch Process needs image files: drop one or more into the box.")
        check_input_images([_read(path, lambda opened: opened.size) for path in paths])
        return [_read(path, lambda opened: opened.convert("RGB")) for path in paths]
    if image is None:
        raise ValidationError("Extras needs an image: drop one into the Single Image box.")
    return [image]


def _read(path: str, use: Any) -> Any:
    """`use(image)` on an opened image file. The batch's sizes are read from the headers first, so a file that
    declares a huge image is refused before any file is decoded."""
    try:
        with Image.open(path) as opened:
            return use(opened)
    except Image.DecompressionBombError as exc:
        raise ValidationError(f"'{path}' is too large to read: {exc}") from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise ValidationError(f"'{path}' is not an image this app can read.") from exc


def _stream(queue: QueueService, outputs_dir: Path, future: Future):
    """Progress while the job runs, then the results (served from the outputs folder when saved there)."""
    while not future.done():
        time.sleep(POLL_SECONDS)
        yield gr.update(), progress_html(queue.progress()), gr.update(), gr.update()
    try:
        results = future.result()
    except WebUIError as exc:
        yield [], "", "", error_markdown(str(exc))
        return
    except OSError as exc:
        yield [], "", "", error_markdown(f"Could not save the images: {exc}")
        return
    shown = [shown_image(outputs_dir, path, image) for image, path, _info in results]
    first = results[0][2] if results else ""
    note = "" if results else "No images were processed."
    yield shown, "", info_html(first), note
