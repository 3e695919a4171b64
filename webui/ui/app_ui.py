"""Builds the Gradio Blocks from the services. Nothing here loads models; everything goes through services."""
from __future__ import annotations

import gradio as gr

from webui.services import Services
from webui.ui.components import build_quicksettings
from webui.ui.tabs.extras import build_extras_tab
from webui.ui.tabs.img2img import build_img2img_tab
from webui.ui.tabs.png_info import build_png_info_tab
from webui.ui.tabs.settings import build_settings_tab
from webui.ui.tabs.train import build_train_tab
from webui.ui.tabs.txt2img import build_txt2img_tab

CSS = """
#quicksettings { align-items: end; }
.infotext { font-family: monospace; font-size: 0.85em; white-space: pre-wrap; overflow-wrap: anywhere; }
.progress-text progress { width: 60%; vertical-align: middle; }
"""

TXT2IMG_TAB_ID = "txt2img"
IMG2IMG_TAB_ID = "img2img"


def build_ui(services: Services) -> gr.Blocks:
    with gr.Blocks(title="Stable Diffusion Studio", analytics_enabled=False) as blocks:
        quick = build_quicksettings(services)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id=TXT2IMG_TAB_ID, elem_id="tab_txt2img"):
                txt2img = build_txt2img_tab(services, quick, blocks)
            with gr.Tab("img2img", id=IMG2IMG_TAB_ID, elem_id="tab_img2img"):
                img2img = build_img2img_tab(services, quick, blocks)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                build_extras_tab(services)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                build_png_info_tab(services, tabs, txt2img, TXT2IMG_TAB_ID, img2img, IMG2IMG_TAB_ID)
            with gr.Tab("Train", id="train", elem_id="tab_train"):
                build_train_tab(services)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                build_settings_tab(services, quick, blocks)
        blocks.load(lambda: services.models.startup_message() and f"**Start-up:** {services.models.startup_message()}",
                    outputs=[quick.message], api_name=False)
    return blocks
