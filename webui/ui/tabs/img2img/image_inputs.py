"""The img2img tab's image side: the sub-tabs "img2img" (an init image), "Inpaint" (paint the mask on the image
with a brush) and "Inpaint upload" (image + mask file), the resize mode and the inpaint options."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from webui.ui.tabs.img2img.mapping import (
    IMG2IMG_MODES,
    INPAINT_AREAS,
    MASK_MODES,
    MASKED_CONTENT_CHOICES,
    RESIZE_MODE_CHOICES,
)

MODE_TAB_IDS = {mode: f"img2img_mode_{index}" for index, mode in enumerate(IMG2IMG_MODES)}


@dataclass(frozen=True)
class ImageInputs:
    mode: gr.Textbox
    mode_tabs: gr.Tabs
    init_image: gr.Image
    editor: gr.ImageEditor
    inpaint_image: gr.Image
    inpaint_mask: gr.Image
    tabs: tuple[gr.Tab, ...]


@dataclass(frozen=True)
class InpaintOptions:
    resize_mode: gr.Radio
    mask_blur: gr.Slider
    mask_mode: gr.Radio
    masked_content: gr.Radio
    inpaint_area: gr.Radio
    padding: gr.Slider
    group: gr.Group

    def inputs(self) -> list[gr.components.Component]:
        return [self.resize_mode, self.mask_blur, self.mask_mode, self.masked_content, self.inpaint_area,
                self.padding]


def build_image_inputs() -> ImageInputs:
    """The three sub-tabs. A hidden textbox records the selected one: the API and "send to" can set it, which a
    State would not allow."""
    mode = gr.Textbox(value=IMG2IMG_MODES[0], visible=False, elem_id="img2img_selected_tab")
    with gr.Tabs(elem_id="mode_img2img") as mode_tabs:
        with gr.Tab("img2img", id=MODE_TAB_IDS["img2img"], elem_id="img2img_img2img_tab") as tab_img2img:
            init_image = gr.Image(label="Image for img2img", type="pil", image_mode="RGB", format="png",
                                  sources=["upload", "clipboard"], elem_id="img2img_image", height=420)
        with gr.Tab("Inpaint", id=MODE_TAB_IDS["Inpaint"], elem_id="img2img_inpaint_tab") as tab_inpaint:
            editor = gr.ImageEditor(label="Image for inpainting with mask", type="pil", image_mode="RGBA",
                                    format="png", sources=["upload", "clipboard"], transforms=(),
                                    brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed"),
                                    elem_id="img2maskimg", height=420)
            gr.Markdown("Paint over the area to change: everything painted is the mask.")
        with gr.Tab("Inpaint upload", id=MODE_TAB_IDS["Inpaint upload"],
                    elem_id="img2img_inpaint_upload_tab") as tab_upload:
            inpaint_image = gr.Image(label="Image", type="pil", image_mode="RGB", format="png",
                                     sources=["upload", "clipboard"], elem_id="img_inpaint_base", height=300)
            inpaint_mask = gr.Image(label="Mask (white = change)", type="pil", image_mode=None, format="png",
                                    sources=["upload", "clipboard"], elem_id="img_inpaint_mask", height=300)
    return ImageInputs(mode, mode_tabs, init_image, editor, inpaint_image, inpaint_mask,
                        (tab_img2img, tab_inpaint, tab_upload))


def build_inpaint_options() -> InpaintOptions:
    """Resize mode (all sub-tabs) and the inpaint options (shown only on the inpaint sub-tabs)."""
    resize_mode = gr.Radio(label="Resize mode", choices=list(RESIZE_MODE_CHOICES),
                           value=RESIZE_MODE_CHOICES[0], elem_id="img2img_resize_mode")
    with gr.Group(visible=False, elem_id="img2img_inpaint_controls") as group:
        with gr.Row():
            mask_blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=4,
                                  elem_id="img2img_mask_blur")
            mask_mode = gr.Radio(label="Mask mode", choices=list(MASK_MODES), value=MASK_MODES[0],
                                 elem_id="img2img_mask_mode")
        masked_content = gr.Radio(label="Masked content", choices=list(MASKED_CONTENT_CHOICES),
                                  value=MASKED_CONTENT_CHOICES[1], elem_id="img2img_inpainting_fill")
        with gr.Row():
            inpaint_area = gr.Radio(label="Inpaint area", choices=list(INPAINT_AREAS),
                                    value=INPAINT_AREAS[0], elem_id="img2img_inpaint_full_res")
            padding = gr.Slider(label="Only masked padding, pixels", minimum=0, maximum=256, step=4, value=32,
                                elem_id="img2img_inpaint_full_res_padding")
    return InpaintOptions(resize_mode, mask_blur, mask_mode, masked_content, inpaint_area, padding, group)


def wire_mode_tabs(images: ImageInputs, options: InpaintOptions) -> None:
    """Selecting a sub-tab records it (the request takes its image and mask from there) and shows the inpaint
    options only where there is a mask."""

    def selecting(name: str):
        return lambda: (name, gr.update(visible=name != IMG2IMG_MODES[0]))

    for tab, name in zip(images.tabs, IMG2IMG_MODES, strict=True):
        tab.select(selecting(name), outputs=[images.mode, options.group], api_name=False)
