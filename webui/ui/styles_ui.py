"""Prompt styles in a generation tab: the multi-select, "apply to prompt", and an editor to save/edit/delete.

Why a module of its own: A1111 shows the same styles controls on txt2img and img2img; both tabs build them here
with their own prefix. Everything reads and writes `styles.csv` through the services.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.services.style_service import StyleService
from webui.ui.components import REFRESH_SYMBOL
from webui.ui.formatting import error_markdown

APPLY_SYMBOL = "\u270e"  # ✎ (DejaVu glyphs, not emoji: see components.REFRESH_SYMBOL)
PASTE_SYMBOL = "\u2199"  # ↙


@dataclass
class StyleSelector:
    """The styles multi-select and its tool buttons (placed next to Generate)."""

    dropdown: gr.Dropdown
    apply: gr.Button
    refresh: gr.Button


def build_style_selector(styles: StyleService, tab: str) -> StyleSelector:
    """The buttons and the multi-select; the editor is built separately (it sits under the prompts)."""
    with gr.Row(elem_id=f"{tab}_styles_row"):
        apply = gr.Button(APPLY_SYMBOL, elem_id=f"{tab}_style_apply", scale=0, min_width=40)
        refresh = gr.Button(REFRESH_SYMBOL, elem_id=f"{tab}_styles_refresh", scale=0, min_width=40)
    dropdown = gr.Dropdown(label="Styles", choices=styles.style_names(), value=[], multiselect=True,
                           elem_id=f"{tab}_styles", info="Added to the prompt when generating.")
    return StyleSelector(dropdown, apply, refresh)


def _choices(styles: StyleService, selected: list[str] | None, picked: str | None = None) -> tuple[Any, Any]:
    """Fresh choices for the multi-select (keeping the still-existing selection) and the editor's picker."""
    names = styles.style_names()
    kept = [name for name in selected or () if name in names]
    return (gr.update(choices=names, value=kept),
            gr.update(choices=names, value=picked if picked in names else None))


def build_style_editor(styles: StyleService, tab: str, selector: StyleSelector, prompt: gr.Textbox,
                       negative: gr.Textbox) -> None:
    """The "Styles" accordion: pick a style to edit it, save (add or replace), delete; and the wiring of the
    selector's apply and refresh buttons."""
    with gr.Accordion("Edit styles", open=False, elem_id=f"{tab}_styles_edit"):
        picker = gr.Dropdown(label="Style to edit", choices=styles.style_names(), value=None,
                             elem_id=f"{tab}_edit_style_select")
        name = gr.Textbox(label="Style name", elem_id=f"{tab}_edit_style_name",
                          placeholder="Name for a new style, or the style being edited")
        style_prompt = gr.Textbox(label="Style prompt", lines=2, elem_id=f"{tab}_edit_style_prompt",
                                  info="Write {prompt} where the prompt goes; otherwise the style is appended.")
        style_negative = gr.Textbox(label="Style negative prompt", lines=2, elem_id=f"{tab}_edit_style_neg_prompt")
        with gr.Row():
            save_current = gr.Button("Save current prompt as style", elem_id=f"{tab}_style_create")
            save = gr.Button("Save style", variant="primary", elem_id=f"{tab}_edit_style_save")
            delete = gr.Button("Delete style", variant="stop", elem_id=f"{tab}_edit_style_delete")
        message = gr.Markdown("", elem_id=f"{tab}_styles_message")

    lists = [selector.dropdown, picker]
    editor = [name, style_prompt, style_negative]

    def saved(style_name: str, text: str, negative_text: str, selected: list[str]) -> list[Any]:
        try:
            styles.save_style(style_name, text, negative_text)
        except WebUIError as exc:
            return [gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), error_markdown(str(exc))]
        clean = style_name.strip()
        return [*_choices(styles, selected, clean), clean, text, negative_text, f"Saved style **{clean}**."]

    def on_delete(style_name: str, selected: list[str]) -> list[Any]:
        clean = (style_name or "").strip()
        if clean not in styles.style_names():
            return [*_choices(styles, selected), gr.update(), gr.update(), gr.update(),
                    error_markdown(f"There is no style named '{clean}'.")]
        styles.delete_style(clean)
        return [*_choices(styles, selected), "", "", "", f"Deleted style **{clean}**."]

    def on_pick(style_name: str | None) -> list[Any]:
        style = next((row for row in styles.style_rows() if row.name == style_name), None)
        if style is None:
            return [gr.update(), gr.update(), gr.update()]
        return [style.name, style.prompt, style.negative_prompt]

    def on_apply(text: str, negative_text: str, selected: list[str]) -> list[Any]:
        merged, merged_negative = styles.apply_styles_to_prompt(text or "", negative_text or "", selected or [])
        return [merged, merged_negative, []]

    save_current.click(saved, inputs=[name, prompt, negative, selector.dropdown], outputs=[*lists, *editor, message],
                       api_name=f"{tab}_save_prompt_as_style")
    save.click(saved, inputs=[*editor, selector.dropdown], outputs=[*lists, *editor, message],
               api_name=f"{tab}_save_style")
    delete.click(on_delete, inputs=[name, selector.dropdown], outputs=[*lists, *editor, message],
                 api_name=f"{tab}_delete_style")
    picker.input(on_pick, inputs=[picker], outputs=editor, api_name=f"{tab}_edit_style")
    selector.apply.click(on_apply, inputs=[prompt, negative, selector.dropdown],
                         outputs=[prompt, negative, selector.dropdown], api_name=f"{tab}_apply_styles")
    selector.refresh.click(lambda selected: list(_choices(styles, selected)), inputs=[selector.dropdown],
                           outputs=lists, api_name=f"{tab}_refresh_styles")
