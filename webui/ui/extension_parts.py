"""What the active extensions add to the page: their tabs (with "send to" buttons), their always-visible controls on
txt2img/img2img, their settings, and their CSS/JS.

Why each build is guarded: an extension's Gradio code runs while the page is built; if it raises, the extension is
switched off for the session and a message takes the place of its part, and the rest of the page is built.
"""
from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from webui.core.errors import WebUIError
from webui.core.extension_args import ExtensionArgs
from webui.core.requests import GenerationRequest
from webui.core.script_spec import ExtensionScriptOptions, ScriptSpec
from webui.services.extension_service import ExtensionService
from webui.services.info_service import InfoService
from webui.services.model_service import ModelService
from webui.services.option_service import OptionsService
from webui.ui.paste import PasteTargets, fill_from_infotext


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def extension_css(extensions: ExtensionService) -> str:
    return "".join(f"\n/* extension {name} */\n{css}" for name, regs in extensions.registrations() for css in regs.css)


def extension_head(extensions: ExtensionService) -> str:
    """Each extension's JS in its own <script> element (a `</script` inside it cannot end the element early)."""
    parts = []
    for name, regs in extensions.registrations():
        for js in regs.js:
            body = js.replace("</script", "<" + "\\/script")
            parts.append(f'\n<script data-extension="{html.escape(name)}">\n{body}\n</script>')
    return "".join(parts)


@dataclass
class ExtensionControls:
    """The extensions' always-visible controls on one generation tab; their values become each extension's
    `ExtensionArgs` (append `request_inputs()` after the tab's other Generate inputs)."""

    groups: list[tuple[str, list[Any]]] = field(default_factory=list)
    scripts: list[tuple[str, str, list[Any]]] = field(default_factory=list)  # (extension, script, its controls)

    def request_inputs(self) -> list[Any]:
        """The always-visible controls, then the extension scripts' controls."""
        return [component for _, components in self.groups for component in components] + \
            [component for _, _, components in self.scripts for component in components]

    def script_spec(self, chosen: Any, values: Sequence[Any], spec: ScriptSpec) -> ScriptSpec:
        """The extension script chosen in the Script dropdown with its controls' values (`values` in
        `request_inputs()` order), or `spec` (a built-in script or none) when another was chosen."""
        start = sum(len(components) for _, components in self.groups)
        for extension, script, components in self.scripts:
            if chosen == script:
                args = tuple(values[start:start + len(components)])
                return ScriptSpec(script, ExtensionScriptOptions(extension, script, args))
            start += len(components)
        return spec

    def apply(self, request: GenerationRequest, values: Sequence[Any]) -> GenerationRequest:
        """`request` with each extension's values (in `request_inputs()` order) as its arguments."""
        found, start = [], 0
        for name, components in self.groups:
            if start + len(components) <= len(values):  # an older caller may leave trailing values out
                found.append(ExtensionArgs(name, tuple(values[start:start + len(components)])))
            start += len(components)
        if not found:
            return request
        names = {item.name for item in found}
        kept = tuple(item for item in request.extension_args if item.name not in names)
        return dataclasses.replace(request, extension_args=kept + tuple(found))


def build_extension_controls(extensions: ExtensionService | None, tab: str,
                             script_dropdown: Any = None) -> ExtensionControls:
    """An accordion per extension that added generation controls, on `tab` ("txt2img" or "img2img"); with the
    tab's Script dropdown, the extensions' scripts are added to it with their controls (shown when chosen)."""
    controls = ExtensionControls()
    if extensions is None:
        return controls
    if script_dropdown is not None:
        _add_scripts(extensions, tab, script_dropdown, controls)
    for name, regs in list(extensions.registrations()):
        for owner, build in regs.generation_controls:
            with gr.Accordion(owner, open=False, elem_id=f"ext_{_safe(owner)}_{tab}_controls"):
                try:
                    components = list(build(tab) or [])
                except Exception as exc:  # noqa: BLE001 - an extension's UI code may raise anything
                    gr.Markdown(extensions.record_failure(name, "generation controls", exc))
                    continue
            controls.groups.append((owner, components))
    return controls


def _add_scripts(extensions: ExtensionService, tab: str, dropdown: Any, controls: ExtensionControls) -> None:
    """Each extension script offered on `tab`: a dropdown choice and a hidden group with its controls."""
    groups = []
    for name, regs in list(extensions.registrations()):
        for spec in regs.scripts:
            if not (spec.img2img if tab == "img2img" else spec.txt2img):
                continue
            with gr.Group(visible=False, elem_id=f"{tab}_script_ext_{_safe(name)}_{_safe(spec.name)}") as group:
                try:
                    components = list(spec.controls(tab == "img2img") or [])
                except Exception as exc:  # noqa: BLE001 - an extension's UI code may raise anything
                    gr.Markdown(extensions.record_failure(name, f"script '{spec.name}' controls", exc))
                    continue
            controls.scripts.append((name, spec.name, components))
            groups.append((spec.name, group))
    if not groups:
        return
    dropdown.choices = [*dropdown.choices, *((script, script) for script, _ in groups)]
    dropdown.change(lambda chosen: [gr.update(visible=chosen == script) for script, _ in groups], inputs=[dropdown],
                    outputs=[group for _, group in groups], api_name=f"{tab}_extension_script_select")


@dataclass(frozen=True)
class SendTargets:
    """Where an extension tab's "send to" buttons go: the generation tabs' paste targets, img2img's image inputs,
    the Extras tab's image, the tabs to switch, and the folder images may be read from (the outputs)."""

    tabs: gr.Tabs
    info: InfoService
    models: ModelService
    txt2img: PasteTargets
    img2img: Any  # webui.ui.tabs.img2img.Img2ImgTab
    extras_image: Any
    outputs_dir: Path


class TabBridge:
    """The `ui` object an extension's tab build function receives (`webui.extensions.api.TabUI`)."""

    def __init__(self, targets: SendTargets, extension: str):
        self._targets = targets
        self._extension = extension

    def send_to(self, button: Any, target: str, *, infotext: Any, image: Any = None,
                api_name: str | None = None) -> None:
        t = self._targets
        name = api_name or f"{_safe(self._extension)}_send_to_{target}_{id(button)}"
        if target == "txt2img":
            button.click(lambda text: [*fill_from_infotext(t.info, t.models, t.txt2img, text),
                                       gr.Tabs(selected="txt2img")],
                         inputs=[infotext], outputs=[*t.txt2img.outputs(), t.tabs], api_name=name)
        elif target == "img2img":
            self._send_img2img(button, infotext, image, name)
        elif target == "extras":
            button.click(lambda picture: [self._picture(picture), gr.Tabs(selected="extras")], inputs=[image],
                         outputs=[t.extras_image, t.tabs], api_name=name)
        else:
            raise ValueError(f"send_to targets are txt2img, img2img and extras (got {target!r}).")

    def _send_img2img(self, button: Any, infotext: Any, image: Any, api_name: str) -> None:
        t, img2img = self._targets, self._targets.img2img

        def on_send(text: str, picture: Any) -> list[Any]:
            fields = fill_from_infotext(t.info, t.models, img2img.targets, text) if (text or "").strip() else \
                [gr.update() for _ in img2img.targets.outputs()]
            return [*fields, self._picture(picture), gr.Tabs(selected="img2img")]

        button.click(on_send, inputs=[infotext, *([image] if image is not None else [])],
                     outputs=[*img2img.targets.outputs(), img2img.init_image, t.tabs], api_name=api_name)

    def _picture(self, picture: Any) -> Any:
        """A PIL image from a gr.Image value, or from a path (a file in the outputs folder only)."""
        if picture is None or not isinstance(picture, str | Path):
            return picture if picture is not None else gr.update()
        path = Path(picture).resolve()
        if not path.is_relative_to(self._targets.outputs_dir.resolve()) or not path.is_file():
            raise gr.Error("Only images in the outputs folder can be sent.")
        with Image.open(path) as opened:
            return opened.convert("RGB")


def build_extension_tabs(extensions: ExtensionService, targets: SendTargets) -> None:
    """One tab per `add_tab` of the active extensions (call inside the page's `gr.Tabs`)."""
    for name, regs in list(extensions.registrations()):
        for index, spec in enumerate(regs.tabs):
            with gr.Tab(spec.title, id=f"ext_{_safe(name)}_{index}", elem_id=f"tab_ext_{_safe(name)}_{index}"):
                try:
                    spec.build(TabBridge(targets, name))
                except Exception as exc:  # noqa: BLE001 - an extension's UI code may raise anything
                    gr.Markdown(extensions.record_failure(name, f"tab '{spec.title}'", exc))


def build_extension_settings(extensions: ExtensionService, options: OptionsService) -> None:
    """The settings the active extensions added, by section, with their own Apply button (saved in config.json)."""
    specs = [spec for _, regs in extensions.registrations() for spec in regs.settings]
    if not specs:
        return
    widgets = []
    with gr.Accordion("Extension settings", open=True, elem_id="settings_extensions"):
        for section in sorted({spec.section for spec in specs}):
            gr.Markdown(f"**{section}**")
            for spec in (s for s in specs if s.section == section):
                value = options.get(spec.key)
                widgets.append(_setting_widget(spec, spec.default if value is None else value))
        apply = gr.Button("Apply extension settings", elem_id="settings_extensions_apply")
        message = gr.Markdown("", elem_id="settings_extensions_message")

    def save(*values: Any) -> str:
        try:
            changed = options.update({spec.key: value for spec, value in zip(specs, values, strict=True)})
        except WebUIError as exc:
            return f"**Error:** {exc}"
        return f"Saved {len(changed)} changed setting(s)." if changed else "No setting changed."

    apply.click(save, inputs=widgets, outputs=[message], api_name="extension_settings_apply")


def _setting_widget(spec: Any, value: Any) -> Any:
    elem_id = f"setting_{_safe(spec.key)}"
    if spec.choices is not None:
        return gr.Dropdown(choices=list(spec.choices), value=value, label=spec.label, elem_id=elem_id)
    if isinstance(spec.default, bool):
        return gr.Checkbox(value=bool(value), label=spec.label, elem_id=elem_id)
    if isinstance(spec.default, int | float):
        return gr.Number(value=value, label=spec.label, elem_id=elem_id, precision=0 if isinstance(spec.default, int)
                         else None)
    return gr.Textbox(value=str(value), label=spec.label, elem_id=elem_id)
