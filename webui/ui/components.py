"""Widgets shared by several tabs: the quicksettings bar and the seed inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.core.native_sizes import native_size
from webui.services.model_service import ModelService
from webui.services.option_service import OptionsService

# Icon glyphs from fonts every desktop has (DejaVu), not emoji: without an emoji font those render as empty boxes.
# U+FE0E asks for the text (not the emoji) form of the recycle sign.
REFRESH_SYMBOL = "\u21bb"  # ↻
DICE = "\u2684"  # ⚄
RECYCLE = "\u267b\ufe0e"  # ♻ (text form)


@dataclass
class Quicksettings:
    checkpoint: gr.Dropdown
    vae: gr.Dropdown
    clip_skip: gr.Slider
    message: gr.Markdown
    demo_note: gr.Markdown
    refresh_vae: gr.Button | None = None
    # The "select_checkpoint" event: tabs chain on it (`.then`) what follows a loaded model (native sizes).
    selected: Any = None

    def visibility_outputs(self) -> list:
        """The widgets the quicksettings list shows or hides (the checkpoint is always shown, as in A1111)."""
        return [self.vae, self.refresh_vae, self.clip_skip]


def quicksettings_visibility(keys: list[str] | None) -> list[dict]:
    """Updates for `Quicksettings.visibility_outputs` from the `quicksettings_list` option."""
    shown = set(keys or ())
    return [gr.update(visible="sd_vae" in shown), gr.update(visible="sd_vae" in shown),
            gr.update(visible="CLIP_stop_at_last_layers" in shown)]


@dataclass
class SeedWidgets:
    """A1111's seed row with its "Extra" options (variation seed, variation strength, resize seed from)."""

    seed: gr.Number
    random_seed: gr.Button
    reuse_seed: gr.Button
    extra: gr.Checkbox
    subseed: gr.Number
    random_subseed: gr.Button
    reuse_subseed: gr.Button
    subseed_strength: gr.Slider
    seed_resize_from_w: gr.Slider
    seed_resize_from_h: gr.Slider

    def request_inputs(self) -> list:
        """In the order `request_fields.SeedValues` takes them after the seed itself."""
        return [self.extra, self.subseed, self.subseed_strength, self.seed_resize_from_w, self.seed_resize_from_h]


def settings_fold(tab: str) -> gr.Accordion:
    """The generation settings of a tab in one fold: open on a desktop; the page script (`layout_css.LAYOUT_HEAD`)
    closes it when the page opens on a narrow screen, so on a phone the prompt, Generate and the result come
    first and the settings are one tap away."""
    return gr.Accordion("Generation settings", open=True, elem_id=f"{tab}_settings_fold",
                        elem_classes=["settings-fold"])


def build_seed_inputs(tab: str) -> SeedWidgets:
    """The seed row and the hidden-until-"Extra" variation options; `tab` prefixes elem_ids and api_names."""
    with gr.Row(elem_id=f"{tab}_seed_row"):
        seed = gr.Number(label="Seed", value=-1, precision=0, elem_id=f"{tab}_seed", scale=4)
        random_seed = gr.Button(DICE, elem_id=f"{tab}_random_seed", scale=0, min_width=40)
        reuse_seed = gr.Button(RECYCLE, elem_id=f"{tab}_reuse_seed", scale=0, min_width=40)
        extra = gr.Checkbox(label="Extra", value=False, elem_id=f"{tab}_subseed_show", scale=0, min_width=80)
    with gr.Group(visible=False, elem_id=f"{tab}_seed_extras") as extras:
        with gr.Row():
            subseed = gr.Number(label="Variation seed", value=-1, precision=0, elem_id=f"{tab}_subseed", scale=4)
            random_subseed = gr.Button(DICE, elem_id=f"{tab}_random_subseed", scale=0, min_width=40)
            reuse_subseed = gr.Button(RECYCLE, elem_id=f"{tab}_reuse_subseed", scale=0, min_width=40)
            subseed_strength = gr.Slider(label="Variation strength", minimum=0, maximum=1, step=0.01, value=0,
                                         elem_id=f"{tab}_subseed_strength", scale=4)
        with gr.Row():
            resize_w = gr.Slider(label="Resize seed from width", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{tab}_seed_resize_from_w")
            resize_h = gr.Slider(label="Resize seed from height", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{tab}_seed_resize_from_h")
    extra.change(lambda shown: gr.update(visible=bool(shown)), inputs=[extra], outputs=[extras],
                 api_name=f"{tab}_show_seed_extras")
    random_subseed.click(lambda: -1, outputs=[subseed], api_name=f"{tab}_random_subseed")
    return SeedWidgets(seed, random_seed, reuse_seed, extra, subseed, random_subseed, reuse_subseed,
                       subseed_strength, resize_w, resize_h)


DEMO_NOTE = ("You are using the small **demo model** shipped with the app: it draws simple shapes at "
             f"**{native_size(None, demo=True).text}** "
             "(try *a red circle on a blue background*). To use real models, put A1111-style checkpoints "
             "(`.safetensors`) into `models/Stable-diffusion/` and press " + REFRESH_SYMBOL + ".")


def build_quicksettings(models: ModelService, options: OptionsService) -> Quicksettings:
    """Checkpoint, VAE and clip skip above the tabs, with the demo-model note and a message area."""
    shown = quicksettings_visibility(options.get("quicksettings_list"))
    with gr.Row(elem_id="quicksettings"):
        checkpoint = gr.Dropdown(label="Stable Diffusion checkpoint", choices=models.checkpoint_titles(),
                                 value=models.current_checkpoint(), elem_id="setting_sd_model_checkpoint",
                                 scale=4)
        refresh_ckpt = gr.Button(REFRESH_SYMBOL, elem_id="refresh_sd_model_checkpoint", scale=0, min_width=40)
        vae = gr.Dropdown(label="SD VAE", choices=models.vae_titles(), value=models.current_vae(),
                          elem_id="setting_sd_vae", scale=3, visible=shown[0]["visible"])
        refresh_vae = gr.Button(REFRESH_SYMBOL, elem_id="refresh_sd_vae", scale=0, min_width=40,
                                visible=shown[1]["visible"])
        clip_skip = gr.Slider(label="Clip skip", minimum=1, maximum=12, step=1,
                              value=int(options.get("CLIP_stop_at_last_layers") or 1),
                              elem_id="setting_CLIP_stop_at_last_layers", scale=2, visible=shown[2]["visible"])
    message = gr.Markdown("", elem_id="quicksettings_message")
    demo_note = gr.Markdown(DEMO_NOTE, visible=models.is_demo_model(models.current_checkpoint()),
                            elem_id="demo_model_note")

    def on_refresh_checkpoints():
        models.refresh_models()
        return gr.update(choices=models.checkpoint_titles(), value=models.current_checkpoint())

    def on_refresh_vae():
        models.refresh_models()
        return gr.update(choices=models.vae_titles(), value=models.current_vae())

    def on_checkpoint(title: str):
        if not title or title == models.current_checkpoint():
            current = models.current_checkpoint()
            return current, "", gr.update(visible=models.is_demo_model(current))
        try:
            models.select_checkpoint(title)
            text = f"Loaded **{title}**."
        except WebUIError as exc:
            text = f"**Could not load {title}:** {exc}"
        current = models.current_checkpoint()
        return current, text, gr.update(visible=models.is_demo_model(current))

    def on_vae(title: str):
        try:
            models.select_vae(title)
            text = ""
        except WebUIError as exc:
            text = f"**Could not use VAE {title}:** {exc}"
        return models.current_vae(), text

    def on_clip_skip(value: float):
        options.update({"CLIP_stop_at_last_layers": int(value)})

    refresh_ckpt.click(on_refresh_checkpoints, outputs=[checkpoint], api_name="refresh_checkpoints")
    refresh_vae.click(on_refresh_vae, outputs=[vae], api_name="refresh_vae")
    selected = checkpoint.input(on_checkpoint, inputs=[checkpoint], outputs=[checkpoint, message, demo_note],
                                api_name="select_checkpoint")
    vae.input(on_vae, inputs=[vae], outputs=[vae, message], api_name="select_vae")
    clip_skip.release(on_clip_skip, inputs=[clip_skip], api_name="set_clip_skip")
    return Quicksettings(checkpoint, vae, clip_skip, message, demo_note, refresh_vae, selected)
