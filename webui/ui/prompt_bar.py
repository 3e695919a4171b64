"""The prompt bar both generation tabs show: prompt and negative prompt, Generate/Interrupt/Skip, the paste button
and the styles selector, with the Extra Networks panel and the styles editor under it.

Why one builder: txt2img and img2img must look and behave alike here (A1111 users move between them); only the
tab prefix differs, and the ids and api_names each tab always had are kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from webui.services.model_service import ModelService
from webui.services.network_service import NetworkService
from webui.services.style_service import StyleService
from webui.ui.components import Quicksettings
from webui.ui.extra_networks import build_extra_networks
from webui.ui.generate_forever import ForeverSwitch, build_forever_toggle
from webui.ui.styles_ui import PASTE_SYMBOL, StyleSelector, build_style_editor, build_style_selector

PROMPT_PLACEHOLDER = ("Prompt (press Generate). Paste an infotext here and press " + PASTE_SYMBOL
                      + " to fill every field from it.")


@dataclass(frozen=True)
class PromptBar:
    prompt: gr.Textbox
    negative: gr.Textbox
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    paste: gr.Button
    styles: StyleSelector

    def busy_outputs(self) -> list[gr.Button]:
        """The buttons `generation_ui.busy` updates, in its order."""
        return [self.generate, self.interrupt, self.skip]


def build_prompt_bar(styles: StyleService, networks: NetworkService, models: ModelService, tab: str,
                     quick: Quicksettings, paste_id: str, forever: ForeverSwitch | None = None) -> PromptBar:
    """The bar, the Extra Networks panel (its checkpoint cards load through `models`) and the styles editor; `tab`
    prefixes ids, `paste_id` is the paste button's elem_id (txt2img's is A1111's plain "paste")."""
    with gr.Row():
        with gr.Column(scale=6):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id=f"{tab}_prompt", placeholder=PROMPT_PLACEHOLDER)
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{tab}_neg_prompt")
        with gr.Column(scale=1, min_width=180):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{tab}_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", visible=False, elem_id=f"{tab}_interrupt")
                skip = gr.Button("Skip", visible=False, elem_id=f"{tab}_skip")
            if forever is not None:  # "Generate forever" under the button (a phone has no right-click)
                build_forever_toggle(tab, forever)
            with gr.Row():
                paste = gr.Button(PASTE_SYMBOL, elem_id=paste_id, scale=0, min_width=40)
                selector = build_style_selector(styles, tab)
    build_extra_networks(networks, models, tab, prompt, negative, quick)
    build_style_editor(styles, tab, selector, prompt, negative)
    return PromptBar(prompt, negative, generate, interrupt, skip, paste, selector)
