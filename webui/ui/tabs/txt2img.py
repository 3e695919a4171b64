"""The txt2img tab: prompt, styles, paste, sampler, size, CFG, seed (with "Extra"), batch, Generate/Interrupt/Skip,
progress, gallery."""
from __future__ import annotations

import gradio as gr

from webui.services import Services
from webui.ui import mappers
from webui.ui.components import Quicksettings, SeedWidgets, build_seed_inputs
from webui.ui.extra_networks import build_extra_networks
from webui.ui.generation_ui import stream_generation
from webui.ui.hires_ui import build_hires_section
from webui.ui.paste import PasteTargets, fill_from_infotext
from webui.ui.scripts_ui import build_script_controls
from webui.ui.styles_ui import PASTE_SYMBOL, StyleSelector, build_style_editor, build_style_selector

TAB = "txt2img"


def build_txt2img_tab(services: Services, quick: Quicksettings, blocks: gr.Blocks | None = None) -> PasteTargets:
    """Build the tab; returns the widgets an infotext fills, for PNG Info's "Send to txt2img"."""
    defaults = services.default_request()
    with gr.Row():
        with gr.Column(scale=6):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt",
                                placeholder="Prompt (press Generate). Paste an infotext here and press "
                                            + PASTE_SYMBOL + " to fill every field from it.")
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="txt2img_neg_prompt")
        with gr.Column(scale=1, min_width=180):
            generate = gr.Button("Generate", variant="primary", elem_id="txt2img_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", visible=False, elem_id="txt2img_interrupt")
                skip = gr.Button("Skip", visible=False, elem_id="txt2img_skip")
            with gr.Row():
                paste = gr.Button(PASTE_SYMBOL, elem_id="paste", scale=0, min_width=40)
                styles = build_style_selector(services, TAB)
    build_extra_networks(services, TAB, prompt, negative, quick)
    build_style_editor(services, TAB, styles, prompt, negative)
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                sampler = gr.Dropdown(label="Sampling method", choices=services.sampler_names(),
                                      value=services.options.get("default_sampler"), elem_id="txt2img_sampling")
                schedule = gr.Dropdown(label="Schedule type", choices=services.schedule_types(),
                                       value=defaults.scheduler, elem_id="txt2img_scheduler")
            steps = gr.Slider(label="Sampling steps", minimum=1, maximum=150, step=1, value=defaults.steps,
                              elem_id="txt2img_steps")
            with gr.Row():
                width = gr.Slider(label="Width", minimum=64, maximum=2048, step=8, value=defaults.width,
                                  elem_id="txt2img_width")
                height = gr.Slider(label="Height", minimum=64, maximum=2048, step=8, value=defaults.height,
                                   elem_id="txt2img_height")
            with gr.Row():
                batch_count = gr.Slider(label="Batch count", minimum=1, maximum=100, step=1, value=1,
                                        elem_id="txt2img_batch_count")
                batch_size = gr.Slider(label="Batch size", minimum=1, maximum=8, step=1, value=1,
                                       elem_id="txt2img_batch_size")
            cfg = gr.Slider(label="CFG Scale", minimum=1, maximum=30, step=0.5, value=defaults.cfg_scale,
                            elem_id="txt2img_cfg_scale")
            seeds = build_seed_inputs(TAB)
            hires = build_hires_section(services, TAB)
            scripts = build_script_controls(services, TAB)
        with gr.Column(scale=1):
            progress = gr.HTML("", elem_id="txt2img_progress")
            gallery = gr.Gallery(label="Output", columns=4, height="auto", elem_id="txt2img_gallery",
                                 format="png", interactive=False)
            info = gr.HTML("", elem_id="txt2img_info")
            message = gr.Markdown("", elem_id="txt2img_message")
    infotexts = gr.State([])
    last_seeds = gr.State([])

    widgets = {"prompt": prompt, "negative_prompt": negative, "steps": steps, "sampler_name": sampler,
               "scheduler": schedule, "cfg_scale": cfg, "seed": seeds.seed, "width": width, "height": height,
               "clip_skip": quick.clip_skip, "subseed": seeds.subseed, "subseed_strength": seeds.subseed_strength,
               "seed_resize_from_w": seeds.seed_resize_from_w, "seed_resize_from_h": seeds.seed_resize_from_h,
               **hires.paste_fields()}
    targets = PasteTargets(widgets, seeds.extra, quick, message)

    def run(prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v, height_v, cfg_v, seed_v,
            count_v, size_v, clip_skip_v, styles_v=None, extra_v=False, subseed_v=-1, strength_v=0.0,
            resize_w_v=0, resize_h_v=0, hr_enable_v=False, hr_upscaler_v="Latent", hr_steps_v=0,
            hr_denoise_v=mappers.HIRES_DEFAULT_DENOISING, hr_scale_v=2.0, hr_resize_x_v=0, hr_resize_y_v=0, *script_v):
        def submit():
            request = mappers.txt2img_request(prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v,
                                              height_v, cfg_v, seed_v, count_v, size_v, clip_skip_v, styles_v,
                                              extra_v, subseed_v, strength_v, resize_w_v, resize_h_v)
            request = mappers.with_hires(request, hr_enable_v, hr_upscaler_v, hr_steps_v, hr_denoise_v, hr_scale_v,
                                         hr_resize_x_v, hr_resize_y_v)
            return scripts.submit(services, request, script_v)

        yield from stream_generation(services, submit)

    generate.click(
        run,
        inputs=[prompt, negative, sampler, schedule, steps, width, height, cfg, seeds.seed, batch_count, batch_size,
                quick.clip_skip, styles.dropdown, *seeds.request_inputs(), *hires.request_inputs(),
                *scripts.request_inputs()],
        outputs=[gallery, infotexts, last_seeds, progress, info, message, generate, interrupt, skip],
        api_name="txt2img",
        concurrency_limit=None,
    )
    interrupt.click(lambda: services.interrupt() and None, api_name="interrupt")
    skip.click(lambda: services.skip() and None, api_name="skip")
    _wire_seed_buttons(services, seeds, last_seeds, infotexts)
    paste.click(lambda text: fill_from_infotext(services, targets, text), inputs=[prompt],
                outputs=targets.outputs(), api_name="txt2img_paste")

    def on_select(texts: list[str], evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else 0
        return mappers.info_html(texts[index] if 0 <= index < len(texts) else "")

    gallery.select(on_select, inputs=[infotexts], outputs=[info], api_name="txt2img_select_image")
    if blocks is not None:
        _on_page_load(services, blocks, sampler, styles)
    return targets


def _wire_seed_buttons(services: Services, seeds: SeedWidgets, last_seeds: gr.State, infotexts: gr.State) -> None:
    """Dice sets -1 (random); recycle reuses the last image's seed, or its variation seed from its infotext."""

    def last_subseed(texts: list[str]) -> int:
        fields = services.infotext_fields(texts[0]) if texts else {}
        return int(fields.get("subseed", -1))

    seeds.random_seed.click(lambda: -1, outputs=[seeds.seed], api_name="random_seed")
    seeds.reuse_seed.click(lambda values: values[0] if values else -1, inputs=[last_seeds], outputs=[seeds.seed],
                           api_name="reuse_seed")
    seeds.reuse_subseed.click(last_subseed, inputs=[infotexts], outputs=[seeds.subseed],
                              api_name="txt2img_reuse_subseed")


def _on_page_load(services: Services, blocks: gr.Blocks, sampler: gr.Dropdown, styles: StyleSelector) -> None:
    """Settings that apply "at page load" (A1111's reload-UI settings): the default sampler; and the styles list,
    which may have changed in another tab or on disk since the app was built."""

    def load():
        names = services.style_names()
        return services.options.get("default_sampler"), gr.update(choices=names)

    blocks.load(load, outputs=[sampler, styles.dropdown], api_name=False)

