"""txt2img's "Hires. fix" section: a checkbox revealing upscaler, hires steps, denoising strength, upscale by and
resize width/height to.

Why a module of its own: the txt2img tab only places it and passes its values on (`request_inputs` in the order
`mapping.HiresValues` takes them); the paste mapping fills it through `paste_fields`.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from webui.services.upscale_service import UpscaleService
from webui.ui.paste_plan import HIRES_PASTE_FIELDS
from webui.ui.tabs.txt2img.mapping import HIRES_DEFAULT_DENOISING


@dataclass(frozen=True)
class HiresWidgets:
    enable: gr.Checkbox
    upscaler: gr.Dropdown
    steps: gr.Slider
    denoising_strength: gr.Slider
    scale: gr.Slider
    resize_x: gr.Slider
    resize_y: gr.Slider

    def request_inputs(self) -> list[gr.components.Component]:
        """In the order `mapping.HiresValues` takes them."""
        return [self.enable, self.upscaler, self.steps, self.denoising_strength, self.scale, self.resize_x,
                self.resize_y]

    def paste_fields(self) -> dict[str, gr.components.Component]:
        """The widgets by generation-field name (`paste_plan.HIRES_PASTE_FIELDS`)."""
        return dict(zip(HIRES_PASTE_FIELDS, (self.enable, self.upscaler, self.steps, self.denoising_strength,
                                                     self.scale, self.resize_x, self.resize_y), strict=True))


def build_hires_section(upscale: UpscaleService, tab: str) -> HiresWidgets:
    """The checkbox and the (hidden until ticked) settings; `tab` prefixes elem_ids and api_names; `upscale`
    lists the hires upscalers (latent modes first)."""
    choices = upscale.hires_upscaler_names()
    enable = gr.Checkbox(label="Hires. fix", value=False, elem_id=f"{tab}_enable_hr")
    with gr.Group(visible=False, elem_id=f"{tab}_hires_fix") as group:
        with gr.Row():
            upscaler = gr.Dropdown(label="Upscaler", choices=choices, value=choices[0],
                                   elem_id=f"{tab}_hr_upscaler")
            steps = gr.Slider(label="Hires steps", minimum=0, maximum=150, step=1, value=0,
                              elem_id=f"{tab}_hires_steps", info="0: the same as the sampling steps")
            denoising = gr.Slider(label="Denoising strength", minimum=0, maximum=1, step=0.01,
                                  value=HIRES_DEFAULT_DENOISING, elem_id=f"{tab}_denoising_strength")
        with gr.Row():
            scale = gr.Slider(label="Upscale by", minimum=1, maximum=4, step=0.05, value=2.0,
                              elem_id=f"{tab}_hr_scale")
            resize_x = gr.Slider(label="Resize width to", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{tab}_hr_resize_x")
            resize_y = gr.Slider(label="Resize height to", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{tab}_hr_resize_y")
    enable.change(lambda shown: gr.update(visible=bool(shown)), inputs=[enable], outputs=[group],
                  api_name=f"{tab}_show_hires_fix")
    return HiresWidgets(enable, upscaler, steps, denoising, scale, resize_x, resize_y)
