"""The Extensions tab: Installed (table, enabled checkboxes, "Check for updates", "Apply and restart UI"), Install
from URL (requirements shown, installed with pip only after the user confirms) and Available (an index file).

Why the service decides what is allowed: on an exposed server (`--listen`, `--share`, a non-loopback
`--server-name`) installs and changes are refused unless `--enable-insecure-extension-access`; the tab shows the
reason up front and the same refusal the API gives if a click gets through.
"""
from __future__ import annotations

import json
from typing import Any

import gradio as gr

from webui.core.errors import ExtensionAccessError, WebUIError
from webui.services.extension_service import RESTART_NOTE, ExtensionService
from webui.services.server_restart import RESTART_MARK
from webui.ui.formatting import error_markdown
from webui.ui.tabs.extensions.mapping import (
    AVAILABLE_HEADERS,
    INSTALLED_HEADERS,
    failures_markdown,
    installed_rows,
    refused_markdown,
)


# After "Apply and restart UI" answered that the server restarts: wait for it to go down, then reload the page
# once it answers again (the restart waits for a running generation, so this may take a while).
RELOAD_WHEN_BACK_JS = f"""(note) => {{
  if (!note || !note.includes({json.dumps(RESTART_MARK)})) return [];
  let down = false;
  const poll = () => fetch(location.href, {{cache: "no-store", credentials: "same-origin"}})
    .then(() => {{ if (down) location.reload(); else setTimeout(poll, 1000); }})
    .catch(() => {{ down = true; setTimeout(poll, 1000); }});
  setTimeout(poll, 1000);
  return [];
}}"""


def _problem(exc: WebUIError) -> str:
    return refused_markdown(str(exc)) if isinstance(exc, ExtensionAccessError) else error_markdown(str(exc))


def build_extensions_tab(extensions: ExtensionService) -> None:
    refused = extensions.access_refused()
    gr.Markdown(refused_markdown(refused), elem_id="extensions_refused", visible=bool(refused))
    with gr.Tabs(elem_id="extensions_tabs"):
        with gr.Tab("Installed", id="extensions_installed"):
            _build_installed(extensions, refused)
        with gr.Tab("Install from URL", id="extensions_install"):
            _build_install(extensions, refused)
        with gr.Tab("Available", id="extensions_available"):
            _build_available(extensions, refused)


def _build_installed(extensions: ExtensionService, refused: str) -> None:
    infos = extensions.extensions()
    names = [info.name for info in infos]
    with gr.Row():
        apply = gr.Button("Apply and restart UI", variant="primary", elem_id="extensions_apply",
                          interactive=not refused)
        check = gr.Button("Check for updates", elem_id="extensions_check_updates", interactive=not refused)
        refresh = gr.Button("Refresh list", elem_id="extensions_refresh")
    enabled = gr.CheckboxGroup(choices=names, value=[info.name for info in infos if info.enabled],
                               label="Enabled extensions", elem_id="extensions_enabled", interactive=not refused)
    table = gr.Dataframe(headers=INSTALLED_HEADERS, value=installed_rows(infos), interactive=False,
                         elem_id="extensions_table", wrap=True)
    message = gr.Markdown("*Apply and restart UI* saves the choice and restarts the server with it."
                          if extensions.can_restart else RESTART_NOTE.replace("Saved to config.json; takes",
                                                                               "Changes take"),
                          elem_id="extensions_message")
    failures = gr.Markdown(failures_markdown(infos), elem_id="extensions_failures")

    def listing() -> list[Any]:
        current = extensions.extensions()
        return [gr.CheckboxGroup(choices=[i.name for i in current], value=[i.name for i in current if i.enabled]),
                installed_rows(current), failures_markdown(current)]

    def on_apply(chosen: list[str]) -> list[Any]:
        try:
            note = extensions.apply_and_restart(list(chosen or []), names)  # the choices Gradio accepts
        except WebUIError as exc:
            return [*listing(), _problem(exc)]
        return [*listing(), note]

    def on_check() -> list[Any]:
        try:
            updates = extensions.check_updates()
        except WebUIError as exc:
            return [gr.update(), _problem(exc)]
        return [installed_rows(extensions.extensions(), updates), "Checked for updates."]

    refresh.click(listing, outputs=[enabled, table, failures], api_name="extensions_list")
    apply.click(on_apply, inputs=[enabled], outputs=[enabled, table, failures, message],
                api_name="extensions_apply").then(None, inputs=[message], js=RELOAD_WHEN_BACK_JS)
    check.click(on_check, outputs=[table, message], api_name="extensions_check_updates")


def _build_install(extensions: ExtensionService, refused: str) -> None:
    url = gr.Textbox(label="URL of the extension's git repository", elem_id="extensions_install_url",
                     interactive=not refused)
    branch = gr.Textbox(label="Branch (empty: the default branch)", elem_id="extensions_install_branch",
                        interactive=not refused)
    install = gr.Button("Install", variant="primary", elem_id="extensions_install_button", interactive=not refused)
    message = gr.Markdown("", elem_id="extensions_install_message")
    installed_name = gr.Textbox(visible=False, elem_id="extensions_install_name")
    with gr.Group(visible=False, elem_id="extensions_requirements_group") as requirements_group:
        requirements = gr.Markdown("", elem_id="extensions_requirements")
        confirm = gr.Button("Install these requirements with pip", elem_id="extensions_requirements_install")
    pip_output = gr.Markdown("", elem_id="extensions_requirements_message")

    def on_install(url_v: str, branch_v: str) -> list[Any]:
        try:
            done = extensions.install(url_v or "", branch_v or "")
        except WebUIError as exc:
            return [_problem(exc), "", gr.Group(visible=False), ""]
        listed = "\n".join(f"- `{item}`" for item in done.requirements)
        return [done.message, done.name, gr.Group(visible=bool(done.requirements)),
                f"**{done.name}** asks for these Python packages:\n{listed}" if listed else ""]

    def on_confirm(name: str) -> str:
        try:
            return f"pip finished:\n```\n{extensions.install_requirements(name)}\n```"
        except WebUIError as exc:
            return _problem(exc)

    install.click(on_install, inputs=[url, branch], outputs=[message, installed_name, requirements_group,
                                                             requirements], api_name="extensions_install")
    confirm.click(on_confirm, inputs=[installed_name], outputs=[pip_output],
                  api_name="extensions_install_requirements")


def _build_available(extensions: ExtensionService, refused: str) -> None:
    url = gr.Textbox(label="Extension index URL", value=extensions.index_url(), elem_id="extensions_index_url",
                     interactive=not refused)
    load = gr.Button("Load the extension index", elem_id="extensions_available_load")
    message = gr.Markdown("", elem_id="extensions_available_message")
    table = gr.Dataframe(headers=AVAILABLE_HEADERS, value=[], interactive=False, elem_id="extensions_available_table",
                         wrap=True)
    gr.Markdown("Install one by copying its URL to *Install from URL*." if not refused else "",
                elem_id="extensions_available_hint")

    def on_load(url_v: str) -> list[Any]:
        try:
            result = extensions.available(url_v)
        except WebUIError as exc:
            return [_problem(exc), []]
        if result.error:
            return [error_markdown(result.error), []]
        installed = {info.name for info in extensions.extensions()}
        rows = [[entry.name, entry.url, entry.description, ", ".join(entry.tags),
                 "yes" if entry.name in installed or entry.url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
                 in installed else ""] for entry in result.entries]
        return [f"{len(rows)} extensions in the index.", rows]

    load.click(on_load, inputs=[url], outputs=[message, table], api_name="extensions_available")
