"""Image browser: a tab over the outputs folder: a paged grid filtered by prompt text, model, date and folder; the
selected image's infotext; "send to txt2img / img2img / Extras"; delete into `outputs/.trash`.

Written only against `webui.extensions.api` (plus Gradio for the tab and PIL to open images). Every event has an
`api_name` starting with `image-browser_`, so the tab is scriptable through gradio_client like the rest of the UI.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from webui.extensions.api import ExtensionContext

from .output_index import BrowsePage, BrowseQuery, OutputIndex
from .trash import OutsideOutputsError, confined_image, move_to_trash

ALL = "All"


class ImageBrowser:
    """The tab's handlers over one `OutputIndex` (its cache lives as long as the app)."""

    def __init__(self, ext: ExtensionContext):
        self._ext = ext
        self._info = ext.service("info")
        self.index = OutputIndex(ext.paths.outputs_dir, self.read_infotext)

    def read_infotext(self, path: Path) -> str:
        """The infotext of an image file (PNG text chunk, or EXIF UserComment for JPEG/WebP)."""
        from PIL import Image

        with Image.open(path) as image:
            return self._info.png_info(image).get("info") or ""

    def page_size(self) -> int:
        return max(1, min(200, int(self._ext.setting("image_browser_page_size") or 24)))

    def search(self, text: str, model: str, folder: str, date_from: str, date_to: str,
               page: float | None) -> tuple[list[tuple[str, str]], int, str]:
        """(gallery items as (file, caption = path relative to outputs), the page shown, a status line)."""
        query = BrowseQuery(text=text or "", model="" if model in (None, ALL) else model,
                            folder="" if folder in (None, ALL) else folder, date_from=date_from or "",
                            date_to=date_to or "", page=int(page or 1), page_size=self.page_size())
        try:
            result = self.index.browse(query)
        except ValueError as exc:
            return [], int(page or 1), f"**{exc}**"
        return _gallery(result), result.page, _status(result)

    def open(self, rel: str) -> tuple[str, str, Any]:
        """(infotext, absolute file path for the "send to" buttons, status: the page line stays unless the path is
        refused) of the image `rel`."""
        if not (rel or "").strip():
            return "", "", gr.update()
        try:
            path = confined_image(self.index.root, rel)
        except (OutsideOutputsError, FileNotFoundError) as exc:
            return "", "", f"**{exc}**"
        return self.read_infotext(path), str(path), gr.update()

    def delete(self, rel: str) -> str:
        """Move the image into the trash folder; the status line says where it went (or why not)."""
        try:
            target = move_to_trash(self.index.root, rel)
        except (OutsideOutputsError, FileNotFoundError, OSError) as exc:
            return f"**Not deleted:** {exc}"
        shown = target.relative_to(self.index.root.resolve()).as_posix()
        self._ext.log.info("Moved %s to %s", rel, shown)
        return f"Moved `{rel}` to `outputs/{shown}`."

    def folder_choices(self) -> list[str]:
        """From a directory scan only: cheap enough for every search."""
        return [ALL, *self.index.folders()]

    def model_choices(self) -> list[str]:
        """Reads every image not read yet: asked for when the Model list is opened, not at start-up."""
        return [ALL, *self.index.models()]


def _gallery(page: BrowsePage) -> list[tuple[str, str]]:
    return [(str(entry.path), entry.rel) for entry in page.entries]


def _status(page: BrowsePage) -> str:
    if not page.total:
        return "No images match."
    return f"Page {page.page} of {page.pages} ({page.total} image{'s' if page.total != 1 else ''})."


def build_tab(browser: ImageBrowser, ui: Any) -> None:
    """The tab's layout and events."""
    with gr.Row():
        text = gr.Textbox(label="Prompt contains", elem_id="image_browser_text", scale=3)
        model = gr.Dropdown(label="Model", choices=[ALL], value=ALL, allow_custom_value=True,
                            elem_id="image_browser_model")
        folder = gr.Dropdown(label="Folder", choices=browser.folder_choices(), value=ALL, allow_custom_value=True,
                             elem_id="image_browser_folder")
        date_from = gr.Textbox(label="From date (YYYY-MM-DD)", elem_id="image_browser_date_from")
        date_to = gr.Textbox(label="To date (YYYY-MM-DD)", elem_id="image_browser_date_to")
    with gr.Row():
        search = gr.Button("Search / refresh", variant="primary", elem_id="image_browser_search", scale=2)
        previous = gr.Button("◀ Previous", elem_id="image_browser_previous", scale=1)
        page = gr.Number(label="Page", value=1, precision=0, minimum=1, elem_id="image_browser_page", scale=1,
                         min_width=80)
        following = gr.Button("Next ▶", elem_id="image_browser_next", scale=1)
    status = gr.Markdown(elem_id="image_browser_status")
    with gr.Row():
        gallery = gr.Gallery(value=lambda: browser.search("", ALL, ALL, "", "", 1)[0], columns=6, height=560,
                             allow_preview=False, fit_columns=False, object_fit="contain", label="Images",
                             elem_id="image_browser_gallery", scale=3)
        with gr.Column(scale=2):
            selected = gr.Textbox(label="Selected image (path in outputs)", elem_id="image_browser_selected")
            infotext = gr.Textbox(label="Infotext", lines=8, interactive=False, elem_id="image_browser_infotext")
            file_path = gr.Textbox(visible=False, elem_id="image_browser_file")
            with gr.Row():
                to_txt2img = gr.Button("Send to txt2img", elem_id="image_browser_send_txt2img")
                to_img2img = gr.Button("Send to img2img", elem_id="image_browser_send_img2img")
                to_extras = gr.Button("Send to Extras", elem_id="image_browser_send_extras")
            delete = gr.Button("Delete (move to trash)", variant="stop", elem_id="image_browser_delete")
    filters = [text, model, folder, date_from, date_to]

    def refresh(*values: Any) -> tuple[Any, ...]:
        items, shown, line = browser.search(*values)
        return items, shown, line, gr.update(choices=browser.folder_choices())

    outputs = [gallery, page, status, folder]
    model.focus(lambda: gr.update(choices=browser.model_choices()), None, model, api_name="image-browser_models")
    search.click(lambda *v: refresh(*v[:-1], 1), [*filters, page], outputs, api_name="image-browser_search")
    text.submit(lambda *v: refresh(*v, 1), filters, outputs, api_name=False)
    page.submit(refresh, [*filters, page], outputs, api_name="image-browser_page")
    previous.click(lambda *v: refresh(*v[:-1], max(1, int(v[-1] or 1) - 1)), [*filters, page], outputs,
                   api_name=False)
    following.click(lambda *v: refresh(*v[:-1], int(v[-1] or 1) + 1), [*filters, page], outputs,
                    api_name=False)
    gallery.select(_selected_rel, None, selected, api_name=False)
    selected.change(browser.open, selected, [infotext, file_path, status], api_name="image-browser_open")
    delete.click(browser.delete, selected, status, api_name="image-browser_delete").then(
        lambda *v: refresh(*v), [*filters, page], outputs, api_name=False)
    for button, target in ((to_txt2img, "txt2img"), (to_img2img, "img2img"), (to_extras, "extras")):
        ui.send_to(button, target, infotext=infotext, image=file_path, api_name=f"image-browser_send_{target}")


def _selected_rel(evt: gr.SelectData) -> str:
    """The caption (path in outputs) of the clicked gallery item."""
    value = evt.value if isinstance(evt.value, dict) else {}
    return str(value.get("caption") or "")


def setup(ext: ExtensionContext) -> None:
    ext.add_setting("image_browser_page_size", 24, "Images per page", section="Image browser")
    browser = ImageBrowser(ext)
    ext.add_tab("Image Browser", lambda ui: build_tab(browser, ui))
