"""The PNG Info tab: drop an image, read how it was made, send its parameters to txt2img.

"Send to img2img" comes with the img2img tab; until then there is no button for it (a dead button would only
confuse).
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from webui.services import Services
from webui.ui import mappers
from webui.ui.paste import PasteTargets, fill_from_infotext


def build_png_info_tab(services: Services, tabs: gr.Tabs, txt2img: PasteTargets, txt2img_tab_id: str) -> None:
    """The tab; "Send to txt2img" fills `txt2img` through the same code as the paste button, then selects the
    tab `txt2img_tab_id` of `tabs`."""
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
            message = gr.Markdown("", elem_id="pnginfo_message")

    def on_image(picture: Any) -> tuple[str, str]:
        if picture is None:
            return "", ""
        info = services.png_info(picture)
        return mappers.png_info_html(info["info"], info["items"]), info["info"]

    def on_send(text: str) -> list[Any]:
        if not (text or "").strip():
            return [*(gr.update() for _ in txt2img.outputs()), gr.update(),
                    "This image has no generation parameters to send."]
        return [*fill_from_infotext(services, txt2img, text), gr.Tabs(selected=txt2img_tab_id), ""]

    image.change(on_image, inputs=[image], outputs=[html, generation_info], api_name="pnginfo")
    send_txt2img.click(on_send, inputs=[generation_info], outputs=[*txt2img.outputs(), tabs, message],
                       api_name="pnginfo_send_to_txt2img")
