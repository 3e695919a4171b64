"""The parts of a generation tab besides the prompt bar that txt2img and img2img share: the sampling settings, the
output column, and the wiring of the seed buttons, Interrupt/Skip, the gallery and page load.

Why shared: A1111 shows the same controls on both tabs; each tab keeps its own elem_ids and api_names (passed in),
because users and `gradio_client` scripts call them by name.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from webui.core.requests import GenerationRequest
from webui.services.info_service import InfoService
from webui.services.option_service import OptionsService
from webui.services.queue_service import QueueService
from webui.services.style_service import StyleService
from webui.ui.components import SeedWidgets
from webui.ui.family_controls import FamilyControls, build_family_controls
from webui.ui.generation_ui import selected_info
from webui.ui.prompt_bar import PromptBar
from webui.ui.styles_ui import StyleSelector


@dataclass(frozen=True)
class SamplingWidgets:
    sampler: gr.Dropdown
    schedule: gr.Dropdown
    steps: gr.Slider
    width: gr.Slider
    height: gr.Slider
    batch_count: gr.Slider
    batch_size: gr.Slider
    cfg_scale: gr.Slider
    family: FamilyControls | None = None  # Distilled CFG / Shift, shown for the families that have them


def build_sampling_params(info: InfoService, default_sampler: str, tab: str,
                          defaults: GenerationRequest) -> SamplingWidgets:
    """Sampler (starting at the `default_sampler` option) and schedule, steps, size, batch count/size and CFG
    scale, starting at `defaults`; `info` lists the samplers and schedule types."""
    with gr.Row():
        sampler = gr.Dropdown(label="Sampling method", choices=info.sampler_names(),
                              value=default_sampler, elem_id=f"{tab}_sampling")
        schedule = gr.Dropdown(label="Schedule type", choices=info.schedule_types(), value=defaults.scheduler,
                               elem_id=f"{tab}_scheduler")
    steps = gr.Slider(label="Sampling steps", minimum=1, maximum=150, step=1, value=defaults.steps,
                      elem_id=f"{tab}_steps")
    with gr.Row():
        width = gr.Slider(label="Width", minimum=64, maximum=2048, step=8, value=defaults.width, elem_id=f"{tab}_width")
        height = gr.Slider(label="Height", minimum=64, maximum=2048, step=8, value=defaults.height,
                           elem_id=f"{tab}_height")
    with gr.Row():
        batch_count = gr.Slider(label="Batch count", minimum=1, maximum=100, step=1, value=1,
                                elem_id=f"{tab}_batch_count")
        batch_size = gr.Slider(label="Batch size", minimum=1, maximum=8, step=1, value=1, elem_id=f"{tab}_batch_size")
    cfg = gr.Slider(label="CFG Scale", minimum=1, maximum=30, step=0.5, value=defaults.cfg_scale,
                    elem_id=f"{tab}_cfg_scale")
    family = build_family_controls(tab, sampler, defaults, steps, cfg)
    return SamplingWidgets(sampler, schedule, steps, width, height, batch_count, batch_size, cfg, family)


@dataclass(frozen=True)
class OutputWidgets:
    """The result column and the per-tab state the seed buttons and the gallery read."""

    progress: gr.HTML
    gallery: gr.Gallery
    info: gr.HTML
    message: gr.Markdown
    infotexts: gr.State
    last_seeds: gr.State

    def stream_outputs(self, bar: PromptBar) -> list[gr.components.Component]:
        """The outputs of Generate, in `generation_ui.stream_generation`'s order."""
        return [self.gallery, self.infotexts, self.last_seeds, self.progress, self.info, self.message,
                *bar.busy_outputs()]


def build_output_column(tab: str) -> tuple[gr.HTML, gr.Gallery, gr.HTML, gr.Markdown]:
    """Progress, gallery, infotext and message (placed inside the tab's right column)."""
    progress = gr.HTML("", elem_id=f"{tab}_progress")
    gallery = gr.Gallery(label="Output", columns=4, height="auto", elem_id=f"{tab}_gallery", format="png",
                         interactive=False, object_fit="contain")
    info = gr.HTML("", elem_id=f"{tab}_info")
    message = gr.Markdown("", elem_id=f"{tab}_message")
    return progress, gallery, info, message


@dataclass(frozen=True)
class EventNames:
    """The api_names of a tab's shared events (txt2img's predate the prefixes and keep their bare names)."""

    interrupt: str
    skip: str
    random_seed: str
    reuse_seed: str
    reuse_subseed: str
    select_image: str


def wire_shared_events(info: InfoService, queue: QueueService, bar: PromptBar, seeds: SeedWidgets,
                       output: OutputWidgets, names: EventNames) -> None:
    """Interrupt/Skip, the seed buttons (dice sets -1; recycle reuses the last image's seed, or its variation seed
    from its infotext) and the gallery's infotext on select."""

    def last_subseed(texts: list[str]) -> int:
        fields = info.infotext_fields(texts[0]) if texts else {}
        return int(fields.get("subseed", -1))

    bar.interrupt.click(lambda: queue.interrupt() and None, api_name=names.interrupt)
    bar.skip.click(lambda: queue.skip() and None, api_name=names.skip)
    seeds.random_seed.click(lambda: -1, outputs=[seeds.seed], api_name=names.random_seed)
    seeds.reuse_seed.click(lambda values: values[0] if values else -1, inputs=[output.last_seeds],
                           outputs=[seeds.seed], api_name=names.reuse_seed)
    seeds.reuse_subseed.click(last_subseed, inputs=[output.infotexts], outputs=[seeds.subseed],
                              api_name=names.reuse_subseed)
    output.gallery.select(selected_info, inputs=[output.infotexts], outputs=[output.info],
                          api_name=names.select_image)


def wire_page_load(options: OptionsService, styles: StyleService, blocks: gr.Blocks, sampler: gr.Dropdown,
                   selector: StyleSelector) -> None:
    """Settings that apply "at page load" (A1111's reload-UI settings): the default sampler; and the styles list,
    which may have changed in another tab or on disk since the app was built."""

    def load():
        return options.get("default_sampler"), gr.update(choices=styles.style_names())

    blocks.load(load, outputs=[sampler, selector.dropdown], api_name=False)
