"""Builds the Gradio Blocks from the services. Nothing here loads models; everything goes through services."""
from __future__ import annotations

import gradio as gr

from webui.services import Services
from webui.ui.components import build_quicksettings
from webui.ui.tabs.txt2img import build_txt2img_tab

CSS = """
#quicksettings { align-items: end; }
.infotext { font-family: monospace; font-size: 0.85em; white-space: normal; overflow-wrap: anywhere; }
.progress-text progress { width: 60%; vertical-align: middle; }
"""


def build_ui(services: Services) -> gr.Blocks:
    with gr.Blocks(title="Stable Diffusion Studio", analytics_enabled=False) as blocks:
        quick = build_quicksettings(services)
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("txt2img", id="txt2img"):
                build_txt2img_tab(services, quick)
        blocks.load(lambda: services.startup_message and f"**Start-up:** {services.startup_message}",
                    outputs=[quick.message], api_name=False)
    return blocks
