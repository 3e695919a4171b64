"""Sizes that follow the selected model: when a checkpoint is chosen (and when a page opens) txt2img's and img2img's
width/height become the model's native size, unless the user changed them in this browser session; the hires-fix
hint names the size too; a line says which device generation runs on and, on a CPU, what an image costs.

Why per session: a user who typed a size meant it (a State per tab remembers a slider the user moved); a fresh
page starts from the model. Why after the load: SD 2.x 768-v is told from the 512 base only once it is loaded, so
the sizes are applied in a `.then` of the quicksettings' "select_checkpoint" event. The API keeps A1111's defaults.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.core.native_sizes import NativeSize
from webui.services.model_defaults_service import ModelDefaultsService
from webui.ui.components import Quicksettings


@dataclass(frozen=True)
class SizeWidgets:
    """A tab's width/height sliders and, in txt2img, the hires-fix "Upscale by" slider whose hint names sizes."""

    tab: str
    width: gr.Slider
    height: gr.Slider
    hires_scale: gr.Slider | None = None


def hires_hint(size: NativeSize) -> str:
    return f"{size.family_label} draws best at {size.text}: hires fix at 2x makes {size.hires_text}."


def size_updates(size: NativeSize, targets: Sequence[SizeWidgets], keep: Sequence[bool]) -> list[Any]:
    """Updates for every target's (width, height[, hires scale]): the native size unless `keep` says the user
    chose that tab's size."""
    updates: list[Any] = []
    for target, kept in zip(targets, keep, strict=True):
        updates += [gr.update() if kept else gr.update(value=size.side) for _ in range(2)]  # 2 dicts: Gradio pops keys
        if target.hires_scale is not None:
            updates.append(gr.update(info=hires_hint(size)))
    return updates


def build_device_note() -> gr.Markdown:
    """The "Running on ..." line, filled at page load (tests wait for it: the page's sizes are set by then) and
    after a checkpoint change."""
    return gr.Markdown("", elem_id="device_note")


def wire_model_defaults(defaults: ModelDefaultsService, quick: Quicksettings, blocks: gr.Blocks,
                        device_note: gr.Markdown, targets: Sequence[SizeWidgets]) -> None:
    """Sizes follow the checkpoint after "select_checkpoint" and at page load. Each tab's State is set when the
    user moves its width or height (`.input` fires for the user's changes only, not for these updates); at page
    load a size that is no longer the one the page was built with was typed already and is kept too."""
    states = [gr.State(False) for _ in targets]
    built = [(target.width.value, target.height.value) for target in targets]
    for target, state in zip(targets, states, strict=True):
        for name, slider in (("width", target.width), ("height", target.height)):
            slider.input(lambda: True, outputs=[state], api_name=f"{target.tab}_{name}_set_by_user",
                         show_progress="hidden")
    inputs: list[Any] = []
    outputs: list[Any] = [device_note]
    load_outputs: list[Any] = [quick.checkpoint, quick.demo_note]
    for target, state in zip(targets, states, strict=True):
        inputs += [state, target.width, target.height]
        outputs += [target.width, target.height] + ([target.hires_scale] if target.hires_scale is not None else [])

    def apply(values: Sequence[Any], on_page_load: bool) -> list[Any]:
        keep = []
        for index in range(len(targets)):
            changed, width, height = values[3 * index: 3 * index + 3]
            typed = on_page_load and (width, height) != built[index]
            keep.append(bool(changed) or typed)
        return [defaults.device_note(), *size_updates(defaults.native_size(), targets, keep)]

    if quick.selected is not None:
        quick.selected.then(lambda *values: apply(values, False), inputs=inputs, outputs=outputs,
                            api_name="model_defaults", show_progress="hidden")
    def on_load(*values: Any) -> list[Any]:
        """Also the checkpoint list and the demo note: the page may have been built before the start-up load."""
        title, demo = defaults.shown_checkpoint()
        return [gr.update(value=title) if title else gr.update(), gr.update(visible=demo), *apply(values, True)]

    blocks.load(on_load, inputs=inputs, outputs=load_outputs + outputs, api_name=False, show_progress="hidden")
