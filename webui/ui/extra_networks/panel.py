"""The Extra Networks panel (A1111's card browser) for a generation tab: tabs Checkpoints, Textual Inversion and
Lora with preview cards, search, sort, folder filter and refresh; a click adds a LoRA/embedding to the prompt (a
second click removes it) or switches the checkpoint; a card's details show its training metadata and edit its
sidecar `name.json`.

Why this shape: Gradio cannot give each card its own callback, so the grid is one HTML component whose click
reports the card's key (`trigger('click', {key, action})`); every action also has a name-driven twin (the item
box with "Use" / "Details" / "Save"), which is what keyboard users and `gradio_client` drive. Both call the same
functions. txt2img and img2img each call `build_extra_networks` with their own prompt boxes and prefix.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.services.model_service import ModelService
from webui.services.network_service import NetworkService
from webui.ui.components import REFRESH_SYMBOL, Quicksettings
from webui.ui.extra_networks.query import EXTRA_NETWORK_SORTS, SD_VERSIONS, extra_network_query
from webui.ui.extra_networks.views import (
    CARDS_CSS,
    CARDS_JS,
    ThumbnailCache,
    add_text,
    card_keys,
    cards_html,
    details_html,
    remove_text,
    toggle_lora,
    toggle_word,
)
from webui.ui.formatting import error_markdown
from webui.ui.sentinels import ALL_FOLDERS

KINDS: tuple[tuple[str, str], ...] = (("checkpoints", "Checkpoints"), ("textual_inversion", "Textual Inversion"),
                                      ("lora", "Lora"))
TOGGLE_LABEL = "Extra Networks"
# Editor widgets, in order, and the sidecar key each one writes.
EDITOR_KEYS: tuple[str, ...] = ("description", "sd version", "activation text", "preferred weight", "negative text",
                                "notes")


@dataclass
class KindWidgets:
    """One tab of the panel."""

    kind: str
    search: gr.Textbox
    folder: gr.Dropdown
    sort: gr.Dropdown
    descending: gr.Checkbox
    refresh: gr.Button
    cards: gr.HTML
    item: gr.Dropdown
    use: gr.Button
    details: gr.Button
    details_box: gr.Group
    metadata: gr.HTML
    editor: list[Any]
    save: gr.Button
    to_negative: gr.Checkbox | None = None

    def query(self) -> list[Any]:
        """The listing inputs, in the order `_Panel.listing` takes them."""
        return [self.search, self.sort, self.descending, self.folder]


@dataclass
class ExtraNetworksPanel:
    toggle: gr.Button
    panel: gr.Column
    message: gr.Markdown
    tabs: dict[str, KindWidgets] = field(default_factory=dict)


def build_extra_networks(networks: NetworkService, models: ModelService, tab: str, prompt: gr.Textbox,
                         negative: gr.Textbox, quick: Quicksettings | None = None) -> ExtraNetworksPanel:
    """The toggle button (placed under the Generate column) and the hidden panel below it.

    Cards, sidecars and LoRA lookups go through `networks`; a checkpoint card loads through `models`.
    `tab` prefixes elem_ids and api_names (`txt2img`, `img2img`); `quick`, when given, is updated when a checkpoint
    card switches the model.
    """
    with gr.Row(elem_id=f"{tab}_extra_networks_toolbar"):
        gr.Column(scale=6, min_width=0)
        with gr.Column(scale=1, min_width=180):
            toggle = gr.Button(TOGGLE_LABEL, elem_id=f"{tab}_extra_networks_toggle", size="sm")
    shown = gr.State(False)
    with gr.Column(visible=False, elem_id=f"{tab}_extra_networks") as panel:
        with gr.Tabs(elem_id=f"{tab}_extra_tabs"):
            widgets = {}
            for kind, label in KINDS:
                with gr.Tab(label, id=f"{tab}_{kind}", elem_id=f"{tab}_{kind}_extra_tab"):
                    widgets[kind] = _build_kind(tab, kind)
        message = gr.Markdown("", elem_id=f"{tab}_extra_networks_message")
    result = ExtraNetworksPanel(toggle, panel, message, widgets)
    _Panel(networks, models, tab, prompt, negative, quick, result).wire(shown)
    return result


def _build_kind(tab: str, kind: str) -> KindWidgets:
    prefix = f"{tab}_{kind}"
    with gr.Row(equal_height=True):
        search = gr.Textbox(label="Search", placeholder="Search names, folders, descriptions", scale=4,
                            elem_id=f"{prefix}_extra_search")
        folder = gr.Dropdown(label="Folder", choices=[ALL_FOLDERS], value=ALL_FOLDERS, scale=2,
                             allow_custom_value=True, elem_id=f"{prefix}_extra_folder")
        sort = gr.Dropdown(label="Sort by", choices=list(EXTRA_NETWORK_SORTS), value="Name", scale=1,
                           elem_id=f"{prefix}_extra_sort")
        descending = gr.Checkbox(label="Descending", value=False, scale=0, min_width=120,
                                 elem_id=f"{prefix}_extra_sort_dir")
        refresh = gr.Button(REFRESH_SYMBOL, scale=0, min_width=40, elem_id=f"{prefix}_extra_refresh")
    to_negative = gr.Checkbox(label="Add to the negative prompt", value=False,
                              elem_id=f"{prefix}_extra_to_negative") if kind == "textual_inversion" else None
    cards = gr.HTML("", css_template=CARDS_CSS, js_on_load=CARDS_JS, elem_id=f"{prefix}_cards")
    with gr.Row(equal_height=True):
        item = gr.Dropdown(label="Item", choices=[], value=None, allow_custom_value=True, scale=4,
                           elem_id=f"{prefix}_extra_item")
        use = gr.Button("Load checkpoint" if kind == "checkpoints" else "Add / remove in prompt", scale=1,
                        elem_id=f"{prefix}_extra_use")
        details = gr.Button("Details", scale=1, elem_id=f"{prefix}_extra_details")
    with gr.Group(visible=False, elem_id=f"{prefix}_extra_details_box") as details_box:
        metadata = gr.HTML("", js_on_load=None, elem_id=f"{prefix}_extra_metadata", padding=True)
        description = gr.Textbox(label="Description", lines=2, elem_id=f"{prefix}_extra_edit_description")
        with gr.Row():
            sd_version = gr.Dropdown(label="Stable Diffusion version", choices=list(SD_VERSIONS),
                                     value=SD_VERSIONS[0], allow_custom_value=True,
                                     elem_id=f"{prefix}_extra_edit_sd_version")
            weight = gr.Number(label="Preferred weight (0 = default)", value=0, elem_id=f"{prefix}_extra_edit_weight")
        activation = gr.Textbox(label="Activation text", elem_id=f"{prefix}_extra_edit_activation")
        negative_text = gr.Textbox(label="Negative prompt text", elem_id=f"{prefix}_extra_edit_negative")
        notes = gr.Textbox(label="Notes", lines=3, elem_id=f"{prefix}_extra_edit_notes")
        save = gr.Button("Save", variant="primary", elem_id=f"{prefix}_extra_edit_save")
    editor = [description, sd_version, activation, weight, negative_text, notes]
    return KindWidgets(kind, search, folder, sort, descending, refresh, cards, item, use, details, details_box,
                       metadata, editor, save, to_negative)


class _Panel:
    """The panel's event handlers, bound to one generation tab's prompt boxes."""

    def __init__(self, networks: NetworkService, models: ModelService, tab: str, prompt: gr.Textbox,
                 negative: gr.Textbox, quick: Quicksettings | None, widgets: ExtraNetworksPanel):
        self.networks = networks
        self.models = models
        self.tab = tab
        self.prompt = prompt
        self.negative = negative
        self.quick = quick
        self.widgets = widgets
        self.thumbnails = ThumbnailCache()

    # ----- listing ------------------------------------------------------------------------------------------
    def listing(self, kind: str, search: str, sort_label: str, descending: bool, folder: str,
                refresh: bool = False) -> tuple[str, Any]:
        """(grid HTML, item choices) for the current search/sort/folder."""
        sort, folder_filter = extra_network_query(sort_label, folder)
        cards = self.networks.extra_network_cards(kind, search or "", sort, bool(descending), folder_filter,
                                                 refresh=refresh)
        return cards_html(cards, kind, self.thumbnails), gr.update(choices=card_keys(cards))

    def folder_choices(self, kind: str, current: str | None) -> Any:
        choices = [ALL_FOLDERS, *self.networks.extra_network_folders(kind)]
        return gr.update(choices=choices, value=current if current in choices else ALL_FOLDERS)

    # ----- actions ------------------------------------------------------------------------------------------
    def use_network(self, kind: str, key: str, prompt: str, negative: str, to_negative: bool = False
                    ) -> tuple[str, str, str]:
        """Add the card's text to the prompt, or remove it when it is there: (prompt, negative, message)."""
        prompt, negative = prompt or "", negative or ""
        if not key:
            return prompt, negative, error_markdown("Pick an item first.")
        try:
            if kind == "lora":
                parts = self.networks.lora_prompt_parts(key)
                prompt, added = toggle_lora(prompt, key, parts["tag"], parts["activation"])
                negative = (add_text if added else remove_text)(negative, parts["negative"])
            else:
                self.networks.extra_network_sidecar(kind, key)  # raises for an unknown name
                if to_negative:
                    negative, added = toggle_word(negative, key)
                else:
                    prompt, added = toggle_word(prompt, key)
        except WebUIError as exc:
            return prompt, negative, error_markdown(str(exc))
        return prompt, negative, f"{'Added' if added else 'Removed'} **{key}**."

    def switch_checkpoint(self, key: str) -> tuple[str, Any, Any]:
        """Load the card's checkpoint: (message, quicksettings checkpoint update, demo note update)."""
        if not key:
            return error_markdown("Pick a checkpoint first."), gr.update(), gr.update()
        try:
            loaded = self.models.select_checkpoint(key)
            text = f"Loaded **{loaded}**."
        except WebUIError as exc:
            text = f"**Could not load {key}:** {exc}"
        current = self.models.current_checkpoint()
        return (text, gr.update(choices=self.models.checkpoint_titles(), value=current),
                gr.update(visible=self.models.is_demo_model(current)))

    def show_details(self, kind: str, key: str) -> list[Any]:
        """[details box, metadata HTML, *editor values, message]."""
        keep = [gr.update()] * (len(EDITOR_KEYS) + 2)
        if not key:
            return [*keep, error_markdown("Pick an item first.")]
        try:
            details = self.networks.extra_network_details(kind, key)
        except WebUIError as exc:
            return [*keep, error_markdown(str(exc))]
        sidecar = details["sidecar"]
        values = [str(sidecar.get("description") or ""), str(sidecar.get("sd version") or SD_VERSIONS[0]),
                  str(sidecar.get("activation text") or ""), _number(sidecar.get("preferred weight")),
                  str(sidecar.get("negative text") or ""), str(sidecar.get("notes") or "")]
        return [gr.update(visible=True), details_html(details), *values, ""]

    def save_sidecar(self, kind: str, key: str, *values: Any) -> str:
        if not key:
            return error_markdown("Pick an item first.")
        try:
            self.networks.save_extra_network_sidecar(kind, key, dict(zip(EDITOR_KEYS, values, strict=True)))
        except WebUIError as exc:
            return error_markdown(str(exc))
        return f"Saved the notes of **{key}**."

    # ----- wiring -------------------------------------------------------------------------------------------
    def wire(self, shown: gr.State) -> None:
        kinds = list(self.widgets.tabs.values())
        query_inputs = [w for k in kinds for w in k.query()]

        def toggle(is_shown: bool, *queries: Any) -> list[Any]:
            """Show or hide the panel; showing lists every tab afresh (cheap: the libraries are cached)."""
            if is_shown:
                return [gr.update(visible=False), False, *[gr.update()] * (3 * len(kinds))]
            listed = []
            for index, kind in enumerate(kinds):
                search, sort_label, descending, folder = queries[4 * index: 4 * index + 4]
                listed += [*self.listing(kind.kind, search, sort_label, descending, folder),
                           self.folder_choices(kind.kind, folder)]
            return [gr.update(visible=True), True, *listed]

        self.widgets.toggle.click(toggle, inputs=[shown, *query_inputs],
                                  outputs=[self.widgets.panel, shown,
                                           *[w for k in kinds for w in (k.cards, k.item, k.folder)]],
                                  api_name=f"{self.tab}_extra_networks_toggle")
        for kind in kinds:
            self._wire_kind(kind)

    def _wire_kind(self, w: KindWidgets) -> None:
        name = f"{self.tab}_extra_networks_{w.kind}"
        message = self.widgets.message
        gr.on([w.search.submit, w.search.change, w.sort.change, w.descending.change, w.folder.change],
              _bind(self.listing, w.kind), inputs=w.query(), outputs=[w.cards, w.item], api_name=f"{name}_list",
              trigger_mode="always_last", show_progress="hidden")

        def refresh(search: str, sort_label: str, descending: bool, folder: str) -> list[Any]:
            """Rescan the disk; a chosen folder that is gone falls back to all folders."""
            listed = self.listing(w.kind, search, sort_label, descending, folder, refresh=True)
            folders = self.folder_choices(w.kind, folder)
            if folders["value"] != folder:
                listed = self.listing(w.kind, search, sort_label, descending, folders["value"])
            return [*listed, folders]

        w.refresh.click(refresh, inputs=w.query(), outputs=[w.cards, w.item, w.folder], api_name=f"{name}_refresh")
        details_outputs = [w.details_box, w.metadata, *w.editor, message]
        w.details.click(_bind(self.show_details, w.kind), inputs=[w.item], outputs=details_outputs,
                        api_name=f"{name}_details")
        w.save.click(_bind(self.save_sidecar, w.kind), inputs=[w.item, *w.editor], outputs=[message],
                     api_name=f"{name}_save")
        use_outputs, use, use_inputs = self._wire_use(w, name)

        def on_card(evt: gr.EventData, *values: Any) -> Any:
            """A click in the grid. Browser only: the event data names the card (Gradio passes event data only to
            positional parameters before `*values`); a call without it changes nothing."""
            data = getattr(evt, "_data", None)
            data = data if isinstance(data, dict) else {}
            key = str(data.get("key") or "")
            if not key:
                return gr.skip()
            if data.get("action") == "details":
                return {w.item: key, **dict(zip(details_outputs, self.show_details(w.kind, key), strict=True))}
            return {w.item: key, **dict(zip(use_outputs, use(key, *values), strict=True))}

        card_outputs = [w.item, *details_outputs, *(o for o in use_outputs if all(o is not d for d in details_outputs))]
        w.cards.click(on_card, inputs=use_inputs, outputs=card_outputs, api_name=f"{name}_card",
                      show_progress="hidden")

    def _wire_use(self, w: KindWidgets, name: str) -> tuple[list[Any], Callable[..., Any], list[Any]]:
        """Wire the "Use" button; returns (outputs, handler(key, *extra inputs), extra inputs) for the card click."""
        message = self.widgets.message
        if w.kind == "checkpoints":
            outputs: list[Any] = [message, w.cards]
            if self.quick is not None:
                outputs += [self.quick.checkpoint, self.quick.demo_note]

            def use(key: str, *query: Any) -> list[Any]:
                text, checkpoint, note = self.switch_checkpoint(key)
                cards, _ = self.listing(w.kind, *query)
                return [text, cards, checkpoint, note][: len(outputs)]

            extra = w.query()
        else:
            outputs = [self.prompt, self.negative, message]
            extra = [self.prompt, self.negative] + ([w.to_negative] if w.to_negative is not None else [])

            def use(key: str, *values: Any) -> list[Any]:
                return list(self.use_network(w.kind, key, *values))

        w.use.click(use, inputs=[w.item, *extra], outputs=outputs, api_name=f"{name}_use")
        return outputs, use, extra


def _bind(handler: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """`handler` with the tab's kind filled in (Gradio reads a handler's parameters, so no functools.partial)."""

    def bound(*values: Any) -> Any:
        return handler(kind, *values)

    return bound


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0
