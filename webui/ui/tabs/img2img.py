"""The img2img tab, A1111's layout: prompts with styles and paste; sub-tabs "img2img" (an init image), "Inpaint"
(paint the mask on the image with a brush) and "Inpaint upload" (image + mask file); resize mode, the inpaint
options, denoising strength and every txt2img parameter; Generate/Interrupt/Skip with progress; gallery + infotext.

Results are saved by the services into `outputs/img2img-images`. Widget values become a request only in
`mappers` (`txt2img_request` for the shared fields, `img2img_request` for the image side).
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from webui.services import Services
from webui.ui import mappers
from webui.ui.components import Quicksettings, SeedWidgets, build_seed_inputs
from webui.ui.extra_networks import build_extra_networks
from webui.ui.generation_ui import selected_info, stream_generation
from webui.ui.paste import PasteTargets, fill_from_infotext
from webui.ui.scripts_ui import build_script_controls
from webui.ui.styles_ui import PASTE_SYMBOL, StyleSelector, build_style_editor, build_style_selector

TAB = "img2img"
MODE_TAB_IDS = {mode: f"img2img_mode_{index}" for index, mode in enumerate(mappers.IMG2IMG_MODES)}


@dataclass
class Img2ImgTab:
    """What other tabs fill: the paste targets, the init image and the sub-tab selection ("Send to img2img")."""

    targets: PasteTargets
    init_image: gr.Image
    mode: gr.Textbox
    mode_tabs: gr.Tabs


@dataclass
class _ImageInputs:
    mode: gr.Textbox
    mode_tabs: gr.Tabs
    init_image: gr.Image
    editor: gr.ImageEditor
    inpaint_image: gr.Image
    inpaint_mask: gr.Image
    tabs: tuple[gr.Tab, ...]


@dataclass
class _InpaintOptions:
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


def _build_image_inputs() -> _ImageInputs:
    """The three sub-tabs. A hidden textbox records the selected one: the API and "send to" can set it, which a
    State would not allow."""
    mode = gr.Textbox(value=mappers.IMG2IMG_MODES[0], visible=False, elem_id="img2img_selected_tab")
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
    return _ImageInputs(mode, mode_tabs, init_image, editor, inpaint_image, inpaint_mask,
                        (tab_img2img, tab_inpaint, tab_upload))


def _build_inpaint_options() -> _InpaintOptions:
    """Resize mode (all sub-tabs) and the inpaint options (shown only on the inpaint sub-tabs)."""
    resize_mode = gr.Radio(label="Resize mode", choices=list(mappers.RESIZE_MODE_CHOICES),
                           value=mappers.RESIZE_MODE_CHOICES[0], elem_id="img2img_resize_mode")
    with gr.Group(visible=False, elem_id="img2img_inpaint_controls") as group:
        with gr.Row():
            mask_blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=4,
                                  elem_id="img2img_mask_blur")
            mask_mode = gr.Radio(label="Mask mode", choices=list(mappers.MASK_MODES), value=mappers.MASK_MODES[0],
                                 elem_id="img2img_mask_mode")
        masked_content = gr.Radio(label="Masked content", choices=list(mappers.MASKED_CONTENT_CHOICES),
                                  value=mappers.MASKED_CONTENT_CHOICES[1], elem_id="img2img_inpainting_fill")
        with gr.Row():
            inpaint_area = gr.Radio(label="Inpaint area", choices=list(mappers.INPAINT_AREAS),
                                    value=mappers.INPAINT_AREAS[0], elem_id="img2img_inpaint_full_res")
            padding = gr.Slider(label="Only masked padding, pixels", minimum=0, maximum=256, step=4, value=32,
                                elem_id="img2img_inpaint_full_res_padding")
    return _InpaintOptions(resize_mode, mask_blur, mask_mode, masked_content, inpaint_area, padding, group)


def _wire_mode_tabs(images: _ImageInputs, options: _InpaintOptions) -> None:
    """Selecting a sub-tab records it (the request takes its image and mask from there) and shows the inpaint
    options only where there is a mask."""

    def selecting(name: str):
        return lambda: (name, gr.update(visible=name != mappers.IMG2IMG_MODES[0]))

    for tab, name in zip(images.tabs, mappers.IMG2IMG_MODES, strict=True):
        tab.select(selecting(name), outputs=[images.mode, options.group], api_name=False)


def build_img2img_tab(services: Services, quick: Quicksettings, blocks: gr.Blocks | None = None) -> Img2ImgTab:
    """Build the tab; returns what PNG Info's "Send to img2img" fills."""
    defaults = services.default_request()
    with gr.Row():
        with gr.Column(scale=6):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="img2img_prompt",
                                placeholder="Prompt (press Generate). Paste an infotext here and press "
                                            + PASTE_SYMBOL + " to fill every field from it.")
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="img2img_neg_prompt")
        with gr.Column(scale=1, min_width=180):
            generate = gr.Button("Generate", variant="primary", elem_id="img2img_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", visible=False, elem_id="img2img_interrupt")
                skip = gr.Button("Skip", visible=False, elem_id="img2img_skip")
            with gr.Row():
                paste = gr.Button(PASTE_SYMBOL, elem_id="img2img_paste", scale=0, min_width=40)
                styles = build_style_selector(services, TAB)
    build_extra_networks(services, TAB, prompt, negative, quick)
    build_style_editor(services, TAB, styles, prompt, negative)
    with gr.Row():
        with gr.Column(scale=1):
            images = _build_image_inputs()
            options = _build_inpaint_options()
            _wire_mode_tabs(images, options)
            with gr.Row():
                sampler = gr.Dropdown(label="Sampling method", choices=services.sampler_names(),
                                      value=services.options.get("default_sampler"), elem_id="img2img_sampling")
                schedule = gr.Dropdown(label="Schedule type", choices=services.schedule_types(),
                                       value=defaults.scheduler, elem_id="img2img_scheduler")
            steps = gr.Slider(label="Sampling steps", minimum=1, maximum=150, step=1, value=defaults.steps,
                              elem_id="img2img_steps")
            with gr.Row():
                width = gr.Slider(label="Width", minimum=64, maximum=2048, step=8, value=defaults.width,
                                  elem_id="img2img_width")
                height = gr.Slider(label="Height", minimum=64, maximum=2048, step=8, value=defaults.height,
                                   elem_id="img2img_height")
            with gr.Row():
                batch_count = gr.Slider(label="Batch count", minimum=1, maximum=100, step=1, value=1,
                                        elem_id="img2img_batch_count")
                batch_size = gr.Slider(label="Batch size", minimum=1, maximum=8, step=1, value=1,
                                       elem_id="img2img_batch_size")
            cfg = gr.Slider(label="CFG Scale", minimum=1, maximum=30, step=0.5, value=defaults.cfg_scale,
                            elem_id="img2img_cfg_scale")
            denoising = gr.Slider(label="Denoising strength", minimum=0, maximum=1, step=0.01,
                                  value=defaults.denoising_strength, elem_id="img2img_denoising_strength")
            seeds = build_seed_inputs(TAB)
            scripts = build_script_controls(services, TAB)
        with gr.Column(scale=1):
            progress = gr.HTML("", elem_id="img2img_progress")
            gallery = gr.Gallery(label="Output", columns=4, height="auto", elem_id="img2img_gallery",
                                 format="png", interactive=False)
            info = gr.HTML("", elem_id="img2img_info")
            message = gr.Markdown("", elem_id="img2img_message")
    infotexts = gr.State([])
    last_seeds = gr.State([])

    widgets = {"prompt": prompt, "negative_prompt": negative, "steps": steps, "sampler_name": sampler,
               "scheduler": schedule, "cfg_scale": cfg, "seed": seeds.seed, "width": width, "height": height,
               "clip_skip": quick.clip_skip, "subseed": seeds.subseed, "subseed_strength": seeds.subseed_strength,
               "seed_resize_from_w": seeds.seed_resize_from_w, "seed_resize_from_h": seeds.seed_resize_from_h,
               "denoising_strength": denoising, "mask_blur": options.mask_blur}
    targets = PasteTargets(widgets, seeds.extra, quick, message, names=mappers.IMG2IMG_PASTE_FIELDS)

    def run(mode_v, init_v, editor_v, inpaint_image_v, inpaint_mask_v, prompt_v, negative_v, sampler_v, schedule_v,
            steps_v, width_v, height_v, cfg_v, denoise_v, seed_v, count_v, size_v, clip_skip_v, styles_v=None,
            resize_mode_v=mappers.RESIZE_MODE_CHOICES[0], mask_blur_v=4, mask_mode_v=mappers.MASK_MODES[0],
            fill_v=mappers.MASKED_CONTENT_CHOICES[1], area_v=mappers.INPAINT_AREAS[0], padding_v=32,
            extra_v=False, subseed_v=-1, strength_v=0.0, resize_w_v=0, resize_h_v=0, *script_v):
        def submit():
            base = mappers.txt2img_request(prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v, height_v,
                                           cfg_v, seed_v, count_v, size_v, clip_skip_v, styles_v, extra_v,
                                           subseed_v, strength_v, resize_w_v, resize_h_v)
            image_side = mappers.InpaintWidgets(mode_v, init_v, editor_v, inpaint_image_v, inpaint_mask_v,
                                                resize_mode_v, mask_blur_v, mask_mode_v, fill_v, area_v, padding_v)
            return scripts.submit(services, mappers.img2img_request(base, denoise_v, image_side), script_v)

        yield from stream_generation(services, submit)

    generate.click(
        run,
        inputs=[images.mode, images.init_image, images.editor, images.inpaint_image, images.inpaint_mask, prompt,
                negative, sampler, schedule, steps, width, height, cfg, denoising, seeds.seed, batch_count,
                batch_size, quick.clip_skip, styles.dropdown, *options.inputs(), *seeds.request_inputs(),
                *scripts.request_inputs()],
        outputs=[gallery, infotexts, last_seeds, progress, info, message, generate, interrupt, skip],
        api_name="img2img",
        concurrency_limit=None,
    )
    interrupt.click(lambda: services.interrupt() and None, api_name="img2img_interrupt")
    skip.click(lambda: services.skip() and None, api_name="img2img_skip")
    _wire_seed_buttons(services, seeds, last_seeds, infotexts)
    paste.click(lambda text: fill_from_infotext(services, targets, text), inputs=[prompt],
                outputs=targets.outputs(), api_name="img2img_paste")
    gallery.select(selected_info, inputs=[infotexts], outputs=[info], api_name="img2img_select_image")
    if blocks is not None:
        _on_page_load(services, blocks, sampler, styles)
    return Img2ImgTab(targets, images.init_image, images.mode, images.mode_tabs)


def _wire_seed_buttons(services: Services, seeds: SeedWidgets, last_seeds: gr.State, infotexts: gr.State) -> None:
    """Dice sets -1 (random); recycle reuses the last image's seed, or its variation seed from its infotext."""

    def last_subseed(texts: list[str]) -> int:
        fields = services.infotext_fields(texts[0]) if texts else {}
        return int(fields.get("subseed", -1))

    seeds.random_seed.click(lambda: -1, outputs=[seeds.seed], api_name="img2img_random_seed")
    seeds.reuse_seed.click(lambda values: values[0] if values else -1, inputs=[last_seeds], outputs=[seeds.seed],
                           api_name="img2img_reuse_seed")
    seeds.reuse_subseed.click(last_subseed, inputs=[infotexts], outputs=[seeds.subseed],
                              api_name="img2img_reuse_subseed")


def _on_page_load(services: Services, blocks: gr.Blocks, sampler: gr.Dropdown, styles: StyleSelector) -> None:
    """As on txt2img: the default sampler and a fresh styles list whenever the page loads."""

    def load():
        return services.options.get("default_sampler"), gr.update(choices=services.style_names())

    blocks.load(load, outputs=[sampler, styles.dropdown], api_name=False)
