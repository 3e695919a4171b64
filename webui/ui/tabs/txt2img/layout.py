"""The txt2img tab: the shared prompt bar, sampling settings, seed (with "Extra"), "Hires. fix", the Script
controls, progress and gallery. Widget values become a request only in `mapping`."""
from __future__ import annotations

import gradio as gr

from webui.ui.components import Quicksettings, SeedWidgets, build_seed_inputs, settings_fold
from webui.ui.controlnet import ControlNetSection, build_controlnet_section, unit_count
from webui.ui.extension_parts import ExtensionControls, build_extension_controls
from webui.ui.family_controls import wire_family_controls
from webui.ui.generate_forever import ForeverSwitch, repeat_while_on
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
from webui.ui.prompt_bar import PromptBar, build_prompt_bar
from webui.ui.request_fields import SamplingValues, SeedValues
from webui.ui.script_controls import ScriptControls, build_script_controls
from webui.ui.sentinels import LATENT
from webui.ui.tabs.txt2img.hires import HiresWidgets, build_hires_section
from webui.ui.tabs.txt2img.mapping import HIRES_DEFAULT_DENOISING, HiresValues, txt2img_request

TAB = "txt2img"
# txt2img's shared events keep the bare names they had before img2img existed.
EVENT_NAMES = EventNames(interrupt="interrupt", skip="skip", random_seed="random_seed", reuse_seed="reuse_seed",
                         reuse_subseed="txt2img_reuse_subseed", select_image="txt2img_select_image")


def build_txt2img_tab(services: GenerationTabServices, quick: Quicksettings,
                      blocks: gr.Blocks | None = None) -> PasteTargets:
    """Build the tab; returns the widgets an infotext fills, for PNG Info's "Send to txt2img"."""
    forever = ForeverSwitch()
    bar = build_prompt_bar(services.styles, services.networks, services.models, TAB, quick, paste_id="paste",
                           forever=forever)
    with gr.Row():
        with gr.Column(scale=1), settings_fold(TAB):
            sampling = build_sampling_params(services.info, services.options.get("default_sampler"), TAB,
                                             services.generation.default_request())
            seeds = build_seed_inputs(TAB)
            hires = build_hires_section(services.upscale, TAB)
            controlnet = build_controlnet_section(services.control, TAB,
                                                  unit_count(services.options.get("control_net_unit_count")),
                                                  quick=quick, options=services.options) if services.control else None
            scripts = build_script_controls(services.scripts, TAB)
            extension_controls = build_extension_controls(services.extensions, TAB, scripts.script)
        with gr.Column(scale=1):
            progress, gallery, info, message = build_output_column(TAB)
    output = OutputWidgets(progress, gallery, info, message, gr.State([]), gr.State([]))
    widgets = {"prompt": bar.prompt, "negative_prompt": bar.negative, "steps": sampling.steps,
               "sampler_name": sampling.sampler, "scheduler": sampling.schedule, "cfg_scale": sampling.cfg_scale,
               "seed": seeds.seed, "width": sampling.width, "height": sampling.height, "clip_skip": quick.clip_skip,
               "subseed": seeds.subseed, "subseed_strength": seeds.subseed_strength,
               "seed_resize_from_w": seeds.seed_resize_from_w, "seed_resize_from_h": seeds.seed_resize_from_h,
               **hires.paste_fields()}
    targets = PasteTargets(widgets, seeds.extra, quick, message,
                           sections=([controlnet.paste_section()] if controlnet else []) +
                           ([sampling.family.paste_section()] if sampling.family else []))
    _wire_generate(services, bar, sampling, quick, hires, scripts, seeds, output, forever, controlnet,
                   extension_controls)
    wire_shared_events(services.info, services.queue, bar, seeds, output, EVENT_NAMES)
    bar.paste.click(lambda text: fill_from_infotext(services.info, services.models, targets, text), inputs=[bar.prompt],
                    outputs=targets.outputs(), api_name="txt2img_paste")
    if blocks is not None:
        wire_page_load(services.options, services.styles, blocks, sampling.sampler, bar.styles)
        if services.defaults is not None and sampling.family is not None:
            wire_family_controls(services.defaults, services.info, quick, blocks, [sampling.family], TAB)
    return targets


def _wire_generate(services: GenerationTabServices, bar: PromptBar, sampling: SamplingWidgets, quick: Quicksettings,
                   hires: HiresWidgets, scripts: ScriptControls, seeds: SeedWidgets, output: OutputWidgets,
                   forever: ForeverSwitch, controlnet: ControlNetSection | None = None,
                   extension_controls: ExtensionControls | None = None) -> None:
    """Generate: the inputs' order is the "txt2img" endpoint's public signature (gradio_client callers pass them
    positionally), so it never changes; trailing values may be left out by older callers. `request` is Gradio's
    (not an input): "Generate forever" is read per browser session. Each run queues a task and waits for it.
    The ControlNet units' values come after the script values, the extensions' controls after those."""
    script_count = len(scripts.request_inputs())
    unit_end = script_count + (len(controlnet.request_inputs()) if controlnet else 0)
    family_start = unit_end + (len(extension_controls.request_inputs()) if extension_controls else 0)

    def run(request: gr.Request, prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v, height_v, cfg_v,
            seed_v, count_v, size_v, clip_skip_v, styles_v=None, extra_v=False, subseed_v=-1, strength_v=0.0,
            resize_w_v=0, resize_h_v=0, hr_enable_v=False, hr_upscaler_v=LATENT, hr_steps_v=0,
            hr_denoise_v=HIRES_DEFAULT_DENOISING, hr_scale_v=2.0, hr_resize_x_v=0, hr_resize_y_v=0, *script_v):
        def submit():
            generation_request = txt2img_request(
                SamplingValues(prompt_v, negative_v, sampler_v, schedule_v, steps_v, width_v, height_v, cfg_v,
                               count_v, size_v, clip_skip_v, styles_v),
                SeedValues(seed_v, extra_v, subseed_v, strength_v, resize_w_v, resize_h_v),
                HiresValues(hr_enable_v, hr_upscaler_v, hr_steps_v, hr_denoise_v, hr_scale_v, hr_resize_x_v,
                            hr_resize_y_v))
            if controlnet is not None:
                generation_request = controlnet.apply(generation_request, script_v[script_count:unit_end])
            if extension_controls is not None:
                generation_request = extension_controls.apply(generation_request, script_v[unit_end:])
            if sampling.family is not None:  # the family sliders come last (after the extensions' controls)
                generation_request = sampling.family.apply(generation_request, script_v[family_start:])
            spec = scripts.spec(script_v[:script_count], services.upscale.upscaler_names)
            if extension_controls is not None and script_v:
                spec = extension_controls.script_spec(script_v[0], script_v[unit_end:], spec)
            return services.tasks.submit_generation(generation_request, spec, source="ui").future

        yield from repeat_while_on(forever, request, lambda: stream_generation(services.queue, services.outputs_dir,
                                                                                 submit))

    bar.generate.click(
        run,
        inputs=[bar.prompt, bar.negative, sampling.sampler, sampling.schedule, sampling.steps, sampling.width,
                sampling.height, sampling.cfg_scale, seeds.seed, sampling.batch_count, sampling.batch_size,
                quick.clip_skip, bar.styles.dropdown, *seeds.request_inputs(), *hires.request_inputs(),
                *scripts.request_inputs(), *(controlnet.request_inputs() if controlnet else []),
                *(extension_controls.request_inputs() if extension_controls else []),
                *(sampling.family.request_inputs() if sampling.family else [])],
        outputs=output.stream_outputs(bar),
        api_name="txt2img",
        concurrency_limit=None,
    )
