"""The txt2img tab: prompt, sampler, size, CFG, seed, batch, Generate/Interrupt/Skip, progress, gallery."""
from __future__ import annotations

import time

import gradio as gr

from webui.core.errors import WebUIError
from webui.services import Services
from webui.ui import mappers
from webui.ui.components import Quicksettings

DICE = "\U0001f3b2"  # 🎲
RECYCLE = "\u267b\ufe0f"  # ♻️
POLL_SECONDS = 0.3


def build_txt2img_tab(services: Services, quick: Quicksettings) -> None:
    defaults = services.default_request()
    with gr.Row():
        with gr.Column(scale=6):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt",
                                placeholder="Prompt (press Generate)")
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="txt2img_neg_prompt")
        with gr.Column(scale=1, min_width=180):
            generate = gr.Button("Generate", variant="primary", elem_id="txt2img_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", visible=False, elem_id="txt2img_interrupt")
                skip = gr.Button("Skip", visible=False, elem_id="txt2img_skip")
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                sampler = gr.Dropdown(label="Sampling method", choices=services.sampler_names(),
                                      value=defaults.sampler_name, elem_id="txt2img_sampling")
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
            with gr.Row():
                seed = gr.Number(label="Seed", value=-1, precision=0, elem_id="txt2img_seed", scale=4)
                random_seed = gr.Button(DICE, elem_id="txt2img_random_seed", scale=0, min_width=40)
                reuse_seed = gr.Button(RECYCLE, elem_id="txt2img_reuse_seed", scale=0, min_width=40)
        with gr.Column(scale=1):
            progress = gr.HTML("", elem_id="txt2img_progress")
            gallery = gr.Gallery(label="Output", columns=4, height="auto", elem_id="txt2img_gallery",
                                 format="png", interactive=False)
            info = gr.HTML("", elem_id="txt2img_info")
            message = gr.Markdown("", elem_id="txt2img_message")
    infotexts = gr.State([])
    last_seeds = gr.State([])

    def busy(flag: bool):
        return gr.update(visible=not flag), gr.update(visible=flag), gr.update(visible=flag)

    def run(prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v, height_v, cfg_v, seed_v,
            count_v, size_v, clip_skip_v):
        idle = busy(False)
        try:
            request = mappers.txt2img_request(prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v,
                                              height_v, cfg_v, seed_v, count_v, size_v, clip_skip_v)
            future = services.submit_txt2img(request)
        except (WebUIError, ValueError, TypeError) as exc:
            yield gr.update(), [], [], "", "", mappers.error_markdown(str(exc)), *idle
            return
        yield gr.update(), gr.update(), gr.update(), "", "", "", *busy(True)
        while not future.done():
            time.sleep(POLL_SECONDS)
            yield (gr.update(), gr.update(), gr.update(), mappers.progress_html(services.progress()),
                   gr.update(), gr.update(), *busy(True))
        try:
            result = future.result()
        except WebUIError as exc:
            yield gr.update(), [], [], "", "", mappers.error_markdown(str(exc)), *idle
            return
        images = [(str(img.path) if img.path else img.image, f"Seed {img.seed}") for img in result.images]
        note = "Interrupted: showing the images made so far." if result.interrupted else ""
        first = result.infotexts[0] if result.infotexts else ""
        yield images, result.infotexts, result.seeds, "", mappers.info_html(first), note, *idle

    generate.click(
        run,
        inputs=[prompt, negative, sampler, schedule, steps, width, height, cfg, seed, batch_count, batch_size,
                quick.clip_skip],
        outputs=[gallery, infotexts, last_seeds, progress, info, message, generate, interrupt, skip],
        api_name="txt2img",
        concurrency_limit=None,
    )
    interrupt.click(lambda: services.interrupt() and None, api_name="interrupt")
    skip.click(lambda: services.skip() and None, api_name="skip")
    random_seed.click(lambda: -1, outputs=[seed], api_name="random_seed")
    reuse_seed.click(lambda seeds: seeds[0] if seeds else -1, inputs=[last_seeds], outputs=[seed],
                     api_name="reuse_seed")

    def on_select(texts: list[str], evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else 0
        return mappers.info_html(texts[index] if 0 <= index < len(texts) else "")

    gallery.select(on_select, inputs=[infotexts], outputs=[info], api_name="txt2img_select_image")
