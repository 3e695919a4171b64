"""Filling a generation tab's widgets from an infotext: the paste button (A1111's ↙) and PNG Info's "Send to
txt2img" / "Send to img2img".

Why one module: all of them must fill exactly the same widgets in the same way, including switching the checkpoint
the infotext names; A1111 users rely on "paste, then Generate" reproducing an image.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.services.info_service import InfoService
from webui.services.model_service import ModelService
from webui.ui.components import Quicksettings
from webui.ui.formatting import checkpoint_note, notes_markdown
from webui.ui.paste_plan import PASTE_FIELDS, PastePlan, paste_plan


@dataclass(frozen=True)
class SectionPaste:
    """Widgets a tab section fills from the infotext itself (the ControlNet units): its outputs and a function
    from the infotext text to their updates, in that order."""

    outputs: list[gr.components.Component]
    fill: Callable[[str], list[Any]]


@dataclass
class PasteTargets:
    """The widgets an infotext fills: one per name in `names` (txt2img: `paste_plan.PASTE_FIELDS`; img2img:
    `paste_plan.IMG2IMG_PASTE_FIELDS`), plus the "Extra" seed checkbox, the checkpoint dropdown (with the demo-model
    note it controls) and a message area for notes."""

    fields: dict[str, gr.components.Component]
    extra_seed: gr.Checkbox
    quick: Quicksettings
    message: gr.Markdown
    names: tuple[str, ...] = field(default=PASTE_FIELDS)
    sections: list[SectionPaste] = field(default_factory=list)

    def outputs(self) -> list[Any]:
        """Output components, in the order `fill_from_infotext` returns values (the sections' widgets last)."""
        return [*(self.fields[name] for name in self.names), self.extra_seed, self.quick.checkpoint,
                self.quick.demo_note, self.message, *self.section_outputs()]

    def section_outputs(self) -> list[Any]:
        return [widget for section in self.sections for widget in section.outputs]

    def limits(self) -> dict[str, tuple[float, float]]:
        """The range of every slider target: Gradio refuses values outside it."""
        return {name: (float(comp.minimum), float(comp.maximum)) for name, comp in self.fields.items()
                if isinstance(comp, gr.Slider)}

    def choices(self) -> dict[str, list[str]]:
        """The choices of every dropdown target (sampler and schedule come from the services' tables)."""
        return {name: [choice[1] if isinstance(choice, tuple) else choice for choice in comp.choices]
                for name, comp in self.fields.items()
                if isinstance(comp, gr.Dropdown) and name not in ("sampler_name", "scheduler")}


def fill_from_infotext(info: InfoService, models: ModelService, targets: PasteTargets, text: str) -> list[Any]:
    """Updates for `targets.outputs()`: every field the infotext names, the rest unchanged. `info` parses the text
    and finds its checkpoint, `models` switches to it."""
    if not (text or "").strip():
        unchanged = [gr.update() for _ in targets.outputs()[:-1 - len(targets.section_outputs())]]
        return unchanged + ["Nothing to paste: the prompt box is empty."] + [
            gr.update() for _ in targets.section_outputs()]
    plan = paste_plan(info.infotext_fields(text), samplers=info.sampler_names(),
                      schedules=info.schedule_types(), limits=targets.limits(), choices=targets.choices())
    updates: list[Any] = [plan.values[name] if name in plan.values else gr.update() for name in targets.names]
    updates.append(True if plan.show_extra else gr.update())
    checkpoint, note = _checkpoint(info, models, plan)
    if note:
        plan.notes.append(note)
    updates.append(checkpoint)
    updates.append(gr.update(visible=models.is_demo_model(models.current_checkpoint())))
    updates.append(notes_markdown(plan.notes))
    for section in targets.sections:
        updates += section.fill(text)
    return updates


def _checkpoint(info: InfoService, models: ModelService, plan: PastePlan) -> tuple[Any, str]:
    """Switch to the checkpoint the infotext names when we have it; otherwise keep the current one with a note."""
    if not plan.model and not plan.model_hash:
        return gr.update(), ""
    title = info.find_checkpoint_title(plan.model, plan.model_hash)
    if title is None:
        return gr.update(), checkpoint_note(plan.model, plan.model_hash)
    if title == models.current_checkpoint():
        return gr.update(), ""
    try:
        loaded = models.select_checkpoint(title)
        note = f"Switched the checkpoint to **{loaded}**."
    except WebUIError as exc:
        note = f"**Could not load {title}:** {exc}"
    # Choices too: this session's list may predate the file (Gradio refuses values outside the choices).
    return gr.update(value=models.current_checkpoint(), choices=models.checkpoint_titles()), note
