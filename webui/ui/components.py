"""Widgets shared by several tabs: the quicksettings bar."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from webui.core.errors import WebUIError
from webui.services import Services

REFRESH_SYMBOL = "\U0001f504"  # 🔄


@dataclass
class Quicksettings:
    checkpoint: gr.Dropdown
    vae: gr.Dropdown
    clip_skip: gr.Slider
    message: gr.Markdown
    demo_note: gr.Markdown


DEMO_NOTE = ("You are using the small **demo model** shipped with the app: it draws simple shapes (try "
             "*a red circle on a blue background*). To use real models, put A1111-style checkpoints "
             "(`.safetensors`) into `models/Stable-diffusion/` and press " + REFRESH_SYMBOL + ".")


def build_quicksettings(services: Services) -> Quicksettings:
    with gr.Row(elem_id="quicksettings"):
        checkpoint = gr.Dropdown(label="Stable Diffusion checkpoint", choices=services.checkpoint_titles(),
                                 value=services.current_checkpoint(), elem_id="setting_sd_model_checkpoint",
                                 scale=4)
        refresh_ckpt = gr.Button(REFRESH_SYMBOL, elem_id="refresh_sd_model_checkpoint", scale=0, min_width=40)
        vae = gr.Dropdown(label="SD VAE", choices=services.vae_titles(), value=services.current_vae(),
                          elem_id="setting_sd_vae", scale=3)
        refresh_vae = gr.Button(REFRESH_SYMBOL, elem_id="refresh_sd_vae", scale=0, min_width=40)
        clip_skip = gr.Slider(label="Clip skip", minimum=1, maximum=12, step=1,
                              value=int(services.options.get("CLIP_stop_at_last_layers") or 1),
                              elem_id="setting_CLIP_stop_at_last_layers", scale=2)
    message = gr.Markdown("", elem_id="quicksettings_message")
    demo_note = gr.Markdown(DEMO_NOTE, visible=services.is_demo_model(services.current_checkpoint()),
                            elem_id="demo_model_note")

    def on_refresh_checkpoints():
        services.refresh_models()
        return gr.update(choices=services.checkpoint_titles(), value=services.current_checkpoint())

    def on_refresh_vae():
        services.refresh_models()
        return gr.update(choices=services.vae_titles(), value=services.current_vae())

    def on_checkpoint(title: str):
        if not title or title == services.current_checkpoint():
            current = services.current_checkpoint()
            return current, "", gr.update(visible=services.is_demo_model(current))
        try:
            services.select_checkpoint(title)
            text = f"Loaded **{title}**."
        except WebUIError as exc:
            text = f"**Could not load {title}:** {exc}"
        current = services.current_checkpoint()
        return current, text, gr.update(visible=services.is_demo_model(current))

    def on_vae(title: str):
        try:
            services.select_vae(title)
            text = ""
        except WebUIError as exc:
            text = f"**Could not use VAE {title}:** {exc}"
        return services.current_vae(), text

    def on_clip_skip(value: float):
        services.options.update({"CLIP_stop_at_last_layers": int(value)})

    refresh_ckpt.click(on_refresh_checkpoints, outputs=[checkpoint], api_name="refresh_checkpoints")
    refresh_vae.click(on_refresh_vae, outputs=[vae], api_name="refresh_vae")
    checkpoint.input(on_checkpoint, inputs=[checkpoint], outputs=[checkpoint, message, demo_note],
                     api_name="select_checkpoint")
    vae.input(on_vae, inputs=[vae], outputs=[vae, message], api_name="select_vae")
    clip_skip.release(on_clip_skip, inputs=[clip_skip], api_name="set_clip_skip")
    return Quicksettings(checkpoint, vae, clip_skip, message, demo_note)
