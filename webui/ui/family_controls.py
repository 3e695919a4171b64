"""Generation controls that follow the selected model's family: the sampler list (a flow-matching model offers only
the flow samplers), Flux dev's "Distilled CFG Scale" beside CFG, and the flow schedule's "Shift".

Why apart from the sampling panel: these change with the checkpoint, after it loads (the Flux variant is read from
the loaded weights), for both generation tabs; the facts come from `core/model_families.py` through the model
defaults service. Their values reach Generate through a session State (the last input, after the extensions'
controls): a State is no parameter of the public "txt2img"/"img2img" endpoints, so their signatures stay as they
were for `gradio_client` callers.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.core.infotext import parse_infotext
from webui.core.model_families import FLUX, FLUX_SCHNELL, SD1, family_defaults, family_info, samplers_for
from webui.core.requests import GenerationRequest
from webui.services.info_service import InfoService
from webui.services.model_defaults_service import ModelDefaultsService
from webui.ui.components import Quicksettings
from webui.ui.paste import SectionPaste


@dataclass(frozen=True)
class FamilyControls:
    """A tab's sampler dropdown and its family-only sliders (hidden for SD models)."""

    sampler: gr.Dropdown
    distilled_cfg: gr.Slider
    shift: gr.Slider
    values: gr.State  # (distilled CFG, shift) as last set: a State is no parameter of the public endpoint
    steps: gr.Slider
    cfg_scale: gr.Slider
    shown: gr.State  # the (family, variant) whose steps/CFG defaults were last applied in this session

    def request_inputs(self) -> list[Any]:
        return [self.values]

    def paste_section(self) -> SectionPaste:
        """For `PasteTargets.sections`: the paste button and PNG Info's "Send to" fill the sliders too."""
        return SectionPaste([self.distilled_cfg, self.shift], paste_updates)

    @staticmethod
    def apply(request: GenerationRequest, values: Sequence[Any]) -> GenerationRequest:
        """`request` with the sliders' values (absent when a caller of the endpoint has no session state)."""
        if not values or not values[0]:
            return request
        distilled, shift = values[0]
        return dataclasses.replace(request, distilled_cfg_scale=float(distilled), shift=float(shift))


def paste_updates(text: str) -> list[Any]:
    """(distilled CFG, shift) updates from an infotext: its values; a missing Shift means 0 (the model's own), a
    missing Distilled CFG Scale leaves the slider alone (SD infotexts have none)."""
    fields = parse_infotext(text).to_generation_fields()
    distilled = fields.get("distilled_cfg_scale")
    return [gr.update(value=distilled) if distilled is not None else gr.update(),
            gr.update(value=fields.get("shift", 0.0))]


def build_family_controls(tab: str, sampler: gr.Dropdown, defaults: GenerationRequest, steps: gr.Slider,
                          cfg_scale: gr.Slider) -> FamilyControls:
    with gr.Row():
        distilled = gr.Slider(label="Distilled CFG Scale", minimum=0, maximum=30, step=0.1,
                              value=defaults.distilled_cfg_scale, visible=False, elem_id=f"{tab}_distilled_cfg",
                              info="Flux dev's built-in guidance; CFG Scale above 1 adds real CFG (slower).")
        shift = gr.Slider(label="Shift", minimum=0, maximum=20, step=0.05, value=defaults.shift, visible=False,
                          elem_id=f"{tab}_shift", info="Flow-matching schedule shift; 0 = the model's own.")
    values = gr.State((defaults.distilled_cfg_scale, defaults.shift))
    for slider in (distilled, shift):
        slider.change(lambda d, s: (float(d), float(s)), inputs=[distilled, shift], outputs=[values],
                      api_name=False, show_progress="hidden")
    return FamilyControls(sampler, distilled, shift, values, steps, cfg_scale, gr.State(None))


def family_updates(family: str | None, variant: str, sampler: str | None, all_samplers: list[str],
                   shown: tuple[str, str] | None = None) -> list[Any]:
    """Updates for (sampler, distilled CFG, shift, steps, CFG, shown): the family's samplers (the current one kept
    if allowed, else the family's default), which sliders show, and, when the model's family or variant differs
    from the one last applied in this session (a switch from SD to Flux schnell, say), that family's steps and CFG
    (schnell: 4 steps, CFG 1); switching between models with the same defaults keeps the user's values."""
    info = family_info(family or "")
    choices = samplers_for(info.name, all_samplers)
    wanted = family_defaults(info.name, variant)
    value = sampler if sampler in choices else wanted.sampler
    current = (info.name, variant)
    # a fresh page was built with A1111's SD values: a page opened on a Flux schnell model gets its 4 steps too
    before = family_defaults(*(shown or (SD1, "")))
    changed = (before.steps, before.cfg_scale) != (wanted.steps, wanted.cfg_scale)
    return [gr.update(choices=choices, value=value),
            gr.update(visible=info.name == FLUX and variant != FLUX_SCHNELL),
            gr.update(visible=info.flow),
            gr.update(value=wanted.steps) if changed else gr.update(),
            gr.update(value=wanted.cfg_scale) if changed else gr.update(),
            current]


def wire_family_controls(defaults: ModelDefaultsService, info: InfoService, quick: Quicksettings, blocks: gr.Blocks,
                         controls: Sequence[FamilyControls], tab: str) -> None:
    """After a checkpoint is chosen and at page load, every tab's controls follow the model's family."""
    outputs = [widget for c in controls for widget in (c.sampler, c.distilled_cfg, c.shift, c.steps, c.cfg_scale,
                                                         c.shown)]
    inputs = [widget for c in controls for widget in (c.sampler, c.shown)]

    def update(*values: Any) -> list[Any]:
        family, variant = defaults.family()
        names = info.sampler_names()
        pairs = zip(values[0::2], values[1::2], strict=True)
        return [u for sampler, shown in pairs for u in family_updates(family, variant, sampler, names, shown)]

    if quick.selected is not None:
        quick.selected.then(update, inputs=inputs, outputs=outputs, api_name=f"{tab}_family_controls",
                            show_progress="hidden")
    blocks.load(update, inputs=inputs, outputs=outputs, api_name=False, show_progress="hidden")
