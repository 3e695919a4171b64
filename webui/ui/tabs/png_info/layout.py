"""The PNG Info tab: drop an image, read how it was made, send its parameters to txt2img, or send them and the
image itself to img2img (as the init image)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from webui.services.info_service import InfoService
from webui.services.model_service import ModelService
from webui.ui.paste import PasteTargets, fill_from_infotext
from webui.ui.tabs.img2img import Img2ImgTab
from webui.ui.tabs.img2img.image_inputs import MODE_TAB_IDS
from webui.ui.tabs.img2img.mapping import IMG2IMG_MODES
from webui.ui.tabs.png_info.mapping import png_info_html


def build_png_info_tab(info: InfoService, models: ModelService, tabs: gr.Tabs, txt2img: PasteTargets,
                       txt2img_tab_id: str, img2img: Img2ImgTab | None = None, img2img_tab_id: str = "img2img") -> None:
    """The tab; "Send to txt2img" fills `txt2img` through the same code as the paste button, then selects the
    tab `txt2img_tab_id` of `tabs`; "Send to img2img" does the same for `img2img` and also makes the image its
    init image (on the img2img sub-tab). `info` reads the image; sending may switch the checkpoint (`models`)."""
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            image = gr.Image(label="Source", type="pil", image_mode=None, sources=["upload", "clipboard"],
                             elem_id="pnginfo_image", height=480)
        with gr.Column(variant="panel"):
            html = gr.HTML("", elem_id="pnginfo_html")
            # Hidden, not gr.State: the API and "send to" read it, and API clients do not receive States.
            generation_info = gr.Textbox(visible=False, elem_id="pnginfo_generation_info")
            with gr.Row():
                send_txt2img = gr.Button("Send to txt2img", elem_id="pnginfo_send_to_txt2img")
                send_img2img = gr.Button("Send to img2img", elem_id="pnginfo_send_to_img2img",
                                         visible=img2img is not None)
            message = gr.Markdown("", elem_id="pnginfo_message")

    def on_image(picture: Any) -> tuple[str, str]:
        if picture is None:
            return "", ""
        read = info.png_info(picture)
        return png_info_html(read["info"], read["items"]), read["info"]

    def on_send(text: str) -> list[Any]:
        if not (text or "").strip():
            return [*(gr.update() for _ in txt2img.outputs()), gr.update(),
                    "This image has no generation parameters to send."]
        return [*fill_from_infotext(info, models, txt2img, text), gr.Tabs(selected=txt2img_tab_id), ""]

    image.change(on_image, inputs=[image], outputs=[html, generation_info], api_name="pnginfo")
    send_txt2img.click(on_send, inputs=[generation_info], outputs=[*txt2img.outputs(), tabs, message],
                       api_name="pnginfo_send_to_txt2img")
    if img2img is not None:
        _wire_send_to_img2img(info, models, send_img2img, image, generation_info, tabs, img2img, img2img_tab_id,
                              message)


def _wire_send_to_img2img(info: InfoService, models: ModelService, button: gr.Button, image: gr.Image,
                          generation_info: gr.Textbox, tabs: gr.Tabs, img2img: Img2ImgTab, tab_id: str,
                          message: gr.Markdown) -> None:
    """Fill img2img's fields from the infotext (when the image has one) and make the image its init image."""
    first_mode = IMG2IMG_MODES[0]

    def on_send(picture: Any, text: str) -> list[Any]:
        if picture is None:
            return [*(gr.update() for _ in img2img.targets.outputs()), gr.update(), gr.update(), gr.update(),
                    gr.update(), "Drop an image here first."]
        fields = fill_from_infotext(info, models, img2img.targets, text) if (text or "").strip() else \
            [gr.update() for _ in img2img.targets.outputs()]
        return [*fields, picture, first_mode, gr.Tabs(selected=MODE_TAB_IDS[first_mode]), gr.Tabs(selected=tab_id),
                "" if (text or "").strip() else "This image has no generation parameters; sent the image only."]

    button.click(on_send, inputs=[image, generation_info],
                 outputs=[*img2img.targets.outputs(), img2img.init_image, img2img.mode, img2img.mode_tabs, tabs,
                          message],
                 api_name="pnginfo_send_to_img2img")
