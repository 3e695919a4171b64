"""Builds the Gradio Blocks from the services. Nothing here loads models; everything goes through services.

Why only here the whole container: each tab builder is handed exactly the services (and settings values) it
uses, so what a tab can reach is read off its signature; the engine objects behind the services (`runtime`)
are never handed out."""
from __future__ import annotations

import gradio as gr

from webui.services import Services
from webui.ui.components import build_quicksettings
from webui.ui.controlnet import CONTROLNET_CSS
from webui.ui.extension_parts import SendTargets, build_extension_settings, build_extension_tabs
from webui.ui.generation_services import GenerationTabServices
from webui.ui.layout_css import LAYOUT_CSS, LAYOUT_HEAD
from webui.ui.model_defaults import SizeWidgets, build_device_note, wire_model_defaults
from webui.ui.queue_panel import CSS as QUEUE_CSS
from webui.ui.queue_panel import build_queue_panel
from webui.ui.tabs.extensions import build_extensions_tab
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
""" + LAYOUT_CSS + QUEUE_CSS + CONTROLNET_CSS

HEAD = LAYOUT_HEAD  # page script mounted with the app (`app._mount_ui`)
TXT2IMG_TAB_ID = "txt2img"
IMG2IMG_TAB_ID = "img2img"


def generation_tab_services(services: Services) -> GenerationTabServices:
    """The part of the container txt2img and img2img call."""
    return GenerationTabServices(models=services.models, generation=services.generation, queue=services.queue,
                                 networks=services.networks, styles=services.styles, upscale=services.upscale,
                                 scripts=services.scripts, options=services.options, info=services.info,
                                 outputs_dir=services.settings.paths.outputs_dir, tasks=services.tasks,
                                 control=services.control, extensions=services.extensions,
                                 defaults=services.defaults)


def build_ui(services: Services) -> gr.Blocks:
    """The app's Blocks: quicksettings above the tabs, each tab built from its own part of `services`."""
    generation = generation_tab_services(services)
    hide_dir_config = services.settings.hide_dir_config
    with gr.Blocks(title="Stable Diffusion Studio", analytics_enabled=False) as blocks:
        quick = build_quicksettings(services.models, services.options)
        device_note = build_device_note()
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id=TXT2IMG_TAB_ID, elem_id="tab_txt2img"):
                txt2img = build_txt2img_tab(generation, quick, blocks)
            with gr.Tab("img2img", id=IMG2IMG_TAB_ID, elem_id="tab_img2img"):
                img2img = build_img2img_tab(generation, quick, blocks)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extras = build_extras_tab(services.upscale, services.queue, services.settings.paths.outputs_dir,
                                          hide_dir_config, tasks=services.tasks)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                build_png_info_tab(services.info, services.models, tabs, txt2img, TXT2IMG_TAB_ID, img2img,
                                   IMG2IMG_TAB_ID)
            with gr.Tab("Queue", id="queue", elem_id="tab_queue"):
                build_queue_panel(services.tasks)
            with gr.Tab("Train", id="train", elem_id="tab_train"):
                build_train_tab(services.training, services.models.checkpoint_titles(), hide_dir_config)
            build_extension_tabs(services.extensions, SendTargets(tabs, services.info, services.models, txt2img,
                                                                  img2img, extras["image"],
                                                                  services.settings.paths.outputs_dir))
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                build_settings_tab(services.options, services.info, hide_dir_config, quick, blocks)
                build_extension_settings(services.extensions, services.options)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                build_extensions_tab(services.extensions)
        wire_model_defaults(services.defaults, quick, blocks, device_note, [
            SizeWidgets("txt2img", txt2img.fields["width"], txt2img.fields["height"], txt2img.fields["hr_scale"]),
            SizeWidgets("img2img", img2img.targets.fields["width"], img2img.targets.fields["height"])])
        models = services.models
        blocks.load(lambda: models.startup_message() and f"**Start-up:** {models.startup_message()}",
                    outputs=[quick.message], api_name=False)
    return blocks
