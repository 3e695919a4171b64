"""The img2img tab, A1111's layout: the shared prompt bar; the image sub-tabs with resize mode and inpaint options
(`image_inputs`); denoising strength and every txt2img parameter; the Script controls with "Ultimate SD upscale"
(`upscale_script`); Generate/Interrupt/Skip with progress; gallery + infotext.

Results are saved by the services into `outputs/img2img-images`. Widget values become a request only in
`mapping`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from webui.core.requests import GenerationRequest
from webui.ui.components import Quicksettings, SeedWidgets, build_seed_inputs, settings_fold
from webui.ui.controlnet import ControlNetSection, build_controlnet_section, unit_count
from webui.ui.extension_parts import ExtensionControls, build_extension_controls
from webui.ui.family_controls import wire_family_controls
from webui.ui.generation_panel import (
    EventNames,
    OutputWidgets,
    SamplingWidgets,
    build_output_column,
    build_sampling_params,
    wire_page_load,
    wire_shared_events,
)
from webui.ui.generation_services import GenerationTabServices
from webui.ui.generation_ui import stream_generation
from webui.ui.paste import PasteTargets, fill_from_infotext
from webui.ui.paste_plan import IMG2IMG_PASTE_FIELDS
from webui.ui.prompt_bar import PromptBar, build_prompt_bar
from webui.ui.request_fields import SamplingValues, SeedValues
from webui.ui.script_controls import ScriptControls, UpscaleScript, build_script_controls
from webui.ui.tabs.img2img.image_inputs import (
    ImageInputs,
    InpaintOptions,
    build_image_inputs,
    build_inpaint_options,
    wire_mode_tabs,
)
from webui.ui.tabs.img2img.mapping import (
    INPAINT_AREAS,
    MASK_MODES,
    MASKED_CONTENT_CHOICES,
    RESIZE_MODE_CHOICES,
    InpaintWidgets,
    img2img_request,
)
from webui.ui.tabs.img2img.upscale_script import build_upscale_controls

TAB = "img2img"
EVENT_NAMES = EventNames(interrupt="img2img_interrupt", skip="img2img_skip", random_seed="img2img_random_seed",
                         reuse_seed="img2img_reuse_seed", reuse_subseed="img2img_reuse_subseed",
                         select_image="img2img_select_image")


@dataclass(frozen=True)
class Img2ImgTab:
    """What other tabs fill: the paste targets, the init image and the sub-tab selection ("Send to img2img")."""

    targets: PasteTargets
    init_image: gr.Image
    mode: gr.Textbox
    mode_tabs: gr.Tabs


@dataclass(frozen=True)
class _Controls:
    """The tab's input widgets, grouped as they are built."""

    images: ImageInputs
    options: InpaintOptions
    sampling: SamplingWidgets
    denoising: gr.Slider
    seeds: SeedWidgets
    scripts: ScriptControls
    controlnet: ControlNetSection | None = None
    extensions: ExtensionControls | None = None  # the extensions' always-visible controls (values after the units)


def _build_controls(services: GenerationTabServices, defaults: GenerationRequest,
                    quick: Quicksettings | None = None) -> _Controls:
    """The left column: image sub-tabs, inpaint options, sampling settings, denoising, seed and scripts."""
    images = build_image_inputs()
    options = build_inpaint_options()
    wire_mode_tabs(images, options)
    with settings_fold(TAB):  # the input image stays outside: on a phone it is what the user acts on first
        sampling = build_sampling_params(services.info, services.options.get("default_sampler"), TAB, defaults)
        denoising = gr.Slider(label="Denoising strength", minimum=0, maximum=1, step=0.01,
                              value=defaults.denoising_strength, elem_id="img2img_denoising_strength")
        seeds = build_seed_inputs(TAB)
        controlnet = build_controlnet_section(services.control, TAB,
                                              unit_count(services.options.get("control_net_unit_count")),
                                              images.init_image, quick, services.options) if services.control \
            else None
        upscale = UpscaleScript(partial(build_upscale_controls, services.upscale), services.upscale.upscaler_names)
        scripts = build_script_controls(services.scripts, TAB, upscale)
        extensions = build_extension_controls(services.extensions, TAB, scripts.script)
    return _Controls(images, options, sampling, denoising, seeds, scripts, controlnet, extensions)


def build_img2img_tab(services: GenerationTabServices, quick: Quicksettings,
                      blocks: gr.Blocks | None = None) -> Img2ImgTab:
    """Build the tab; returns what PNG Info's "Send to img2img" fills."""
    bar = build_prompt_bar(services.styles, services.networks, services.models, TAB, quick,
                           paste_id="img2img_paste")
    with gr.Row():
        with gr.Column(scale=1):
            controls = _build_controls(services, services.generation.default_request(), quick)
        with gr.Column(scale=1):
            progress, gallery, info, message = build_output_column(TAB)
    output = OutputWidgets(progress, gallery, info, message, gr.State([]), gr.State([]))
    sampling, seeds = controls.sampling, controls.seeds
    widgets = {"prompt": bar.prompt, "negative_prompt": bar.negative, "steps": sampling.steps,
               "sampler_name": sampling.sampler, "scheduler": sampling.schedule, "cfg_scale": sampling.cfg_scale,
               "seed": seeds.seed, "width": sampling.width, "height": sampling.height, "clip_skip": quick.clip_skip,
               "subseed": seeds.subseed, "subseed_strength": seeds.subseed_strength,
               "seed_resize_from_w": seeds.seed_resize_from_w, "seed_resize_from_h": seeds.seed_resize_from_h,
               "denoising_strength": controls.denoising, "mask_blur": controls.options.mask_blur}
    targets = PasteTargets(widgets, seeds.extra, quick, message, names=IMG2IMG_PASTE_FIELDS,
                           sections=([controls.controlnet.paste_section()] if controls.controlnet else []) +
                           ([controls.sampling.family.paste_section()] if controls.sampling.family else []))
    _wire_generate(services, bar, quick, controls, output)
    wire_shared_events(services.info, services.queue, bar, seeds, output, EVENT_NAMES)
    bar.paste.click(lambda text: fill_from_infotext(services.info, services.models, targets, text), inputs=[bar.prompt],
                    outputs=targets.outputs(), api_name="img2img_paste")
    if blocks is not None:
        wire_page_load(services.options, services.styles, blocks, sampling.sampler, bar.styles)
        if services.defaults is not None and sampling.family is not None:
            wire_family_controls(services.defaults, services.info, quick, blocks, [sampling.family], TAB)
    images = controls.images
    return Img2ImgTab(targets, images.init_image, images.mode, images.mode_tabs)


def _wire_generate(services: GenerationTabServices, bar: PromptBar, quick: Quicksettings, controls: _Controls,
                   output: OutputWidgets) -> None:
    """Generate: the inputs' order is the "img2img" endpoint's public signature (gradio_client callers pass them
    positionally), so it never changes; trailing values may be left out by older callers."""
    images, sampling, seeds, scripts = controls.images, controls.sampling, controls.seeds, controls.scripts
    controlnet, script_count = controls.controlnet, len(scripts.request_inputs())  # units come after the scripts
    unit_end = script_count + (len(controlnet.request_inputs()) if controlnet else 0)  # then the extensions'
    family_start = unit_end + (len(controls.extensions.request_inputs()) if controls.extensions else 0)

    def run(mode_v, init_v, editor_v, inpaint_image_v, inpaint_mask_v, prompt_v, negative_v, sampler_v, schedule_v,
            steps_v, width_v, height_v, cfg_v, denoise_v, seed_v, count_v, size_v, clip_skip_v, styles_v=None,
            resize_mode_v=RESIZE_MODE_CHOICES[0], mask_blur_v=4, mask_mode_v=MASK_MODES[0],
            fill_v=MASKED_CONTENT_CHOICES[1], area_v=INPAINT_AREAS[0], padding_v=32,
            extra_v=False, subseed_v=-1, strength_v=0.0, resize_w_v=0, resize_h_v=0, *script_v):
        def submit():
            request = img2img_request(
                SamplingValues(prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v, height_v, cfg_v,
                               count_v, size_v, clip_skip_v, styles_v),
                SeedValues(seed_v, extra_v, subseed_v, strength_v, resize_w_v, resize_h_v), denoise_v,
                InpaintWidgets(mode_v, init_v, editor_v, inpaint_image_v, inpaint_mask_v, resize_mode_v,
                               mask_blur_v, mask_mode_v, fill_v, area_v, padding_v))
            if controlnet is not None:
                request = controlnet.apply(request, script_v[script_count:unit_end])
            if controls.extensions is not None:
                request = controls.extensions.apply(request, script_v[unit_end:])
            if sampling.family is not None:  # the family sliders come last (after the extensions' controls)
                request = sampling.family.apply(request, script_v[family_start:])
            spec = scripts.spec(script_v[:script_count], services.upscale.upscaler_names)
            if controls.extensions is not None and script_v:
                spec = controls.extensions.script_spec(script_v[0], script_v[unit_end:], spec)
            return services.tasks.submit_generation(request, spec, source="ui").future  # the one queue

        yield from stream_generation(services.queue, services.outputs_dir, submit)

    bar.generate.click(
        run,
        inputs=[images.mode, images.init_image, images.editor, images.inpaint_image, images.inpaint_mask,
                bar.prompt, bar.negative, sampling.sampler, sampling.schedule, sampling.steps, sampling.width,
                sampling.height, sampling.cfg_scale, controls.denoising, seeds.seed, sampling.batch_count,
                sampling.batch_size, quick.clip_skip, bar.styles.dropdown, *controls.options.inputs(),
                *seeds.request_inputs(), *scripts.request_inputs(),
                *(controlnet.request_inputs() if controlnet else []),
                *(controls.extensions.request_inputs() if controls.extensions else []),
                *(sampling.family.request_inputs() if sampling.family else [])],
        outputs=output.stream_outputs(bar),
        api_name="img2img",
        concurrency_limit=None,
    )
