"""The "ControlNet" accordion of txt2img and img2img: N units as tabs, each with the extension's controls.

Per unit: Enable, the control image (in img2img also "Use the img2img input"), preprocessor, model (only those
fitting the loaded checkpoint's family, with a refresh button), weight, guidance start/end, control mode, resize
mode, pixel perfect, processor resolution and the preprocessor's threshold sliders (labels and ranges follow the
chosen preprocessor, hidden when it has none), and "Preview" showing the detected map. The tab appends
`request_inputs()` to its Generate inputs and turns them into units with `units()`; an infotext's units are filled
in by `paste_outputs()` / `paste_updates()`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gradio as gr

from webui.core.control import CONTROL_MODES, CONTROL_RESIZE_MODES, DEFAULT_PROCESSOR_RES, NO_MODEL, ControlUnit
from webui.core.control_modules import Slider, module_list, preprocessor_spec
from webui.core.errors import WebUIError
from webui.core.requests import GenerationRequest
from webui.services.option_service import OptionsService
from webui.ui.components import REFRESH_SYMBOL, Quicksettings
from webui.ui.controlnet.unit_values import (
    PASTED_FIELDS,
    UNIT_FIELDS,
    UnitValues,
    pasted_units,
    units_from_values,
    widget_values,
)
from webui.ui.paste import SectionPaste

DEFAULT_UNITS = 3
SAVE_MAPS_OPTION = "control_net_detectmap_autosaving"
TOOLS_ROW_CLASS = "controlnet-tools"
# The preprocessor/model row: its buttons sit on the dropdowns' baseline instead of stretching to their height.
CONTROLNET_CSS = (f".{TOOLS_ROW_CLASS} {{ align-items: flex-end; }} "
                  f".{TOOLS_ROW_CLASS} button {{ margin-bottom: 0.5em; }}")


class ControlUI(Protocol):
    """What the section calls on the control service (`services.control_service.ControlService`)."""

    def models_for_checkpoint(self) -> list[str]: ...

    def refresh(self) -> list[str]: ...

    def preview(self, unit: ControlUnit, image: Any, target: tuple[int, int] | None = None,
                mask: Any | None = None) -> Any: ...


@dataclass(frozen=True)
class UnitWidgets:
    """One unit's widgets; `inputs()` in `unit_values.UNIT_FIELDS` order.

    Generate reads the control image from `image_state` (kept in step with the upload widget by its `change`
    event), not from the image widget: an image input has no default, so it would become a required argument of
    the tab's public "txt2img"/"img2img" endpoints and break callers that leave trailing values out. API clients
    set it with the `<tab>_controlnet_image_<n>` endpoint (same session), or use the HTTP API's units.
    """

    enabled: gr.Checkbox
    image: gr.Image
    use_input: gr.Checkbox
    module: gr.Dropdown
    model: gr.Dropdown
    weight: gr.Slider
    guidance_start: gr.Slider
    guidance_end: gr.Slider
    control_mode: gr.Radio
    resize_mode: gr.Radio
    pixel_perfect: gr.Checkbox
    processor_res: gr.Slider
    threshold_a: gr.Slider
    threshold_b: gr.Slider
    refresh: gr.Button
    preview: gr.Button
    preview_image: gr.Image
    image_state: gr.State

    def inputs(self) -> list[gr.components.Component]:
        return [self.image_state if name == "image" else getattr(self, name) for name in UNIT_FIELDS]


@dataclass(frozen=True)
class ControlNetSection:
    """The accordion's units, for the tab's Generate and paste wiring."""

    units: tuple[UnitWidgets, ...]
    img2img: bool
    control: ControlUI

    def request_inputs(self) -> list[gr.components.Component]:
        """Every unit's inputs, unit after unit (append these after the tab's other Generate inputs)."""
        return [widget for unit in self.units for widget in unit.inputs()]

    def control_units(self, values: Sequence[Any]) -> tuple[ControlUnit, ...]:
        """Values of `request_inputs()` -> the enabled units for the request."""
        return units_from_values(values, img2img=self.img2img)

    def apply(self, request: GenerationRequest, values: Sequence[Any]) -> GenerationRequest:
        """`request` with the enabled units of `values` (unchanged when none is enabled)."""
        units = self.control_units(values)
        return dataclasses.replace(request, control_units=units) if units else request

    def paste_section(self) -> SectionPaste:
        """For `PasteTargets.sections`: the paste button and PNG Info's "Send to" fill the units too."""
        return SectionPaste(self.paste_outputs(), self.paste_updates)

    def paste_outputs(self) -> list[gr.components.Component]:
        return [getattr(unit, name) for unit in self.units for name in PASTED_FIELDS]

    def paste_updates(self, text: str) -> list[Any]:
        """Updates for `paste_outputs()`: units the infotext records are filled and enabled, the others disabled;
        an infotext without ControlNet leaves every unit alone."""
        pasted = pasted_units(text)
        if not pasted:
            return [gr.update() for _ in self.paste_outputs()]
        updates: list[Any] = []
        models = self.control.models_for_checkpoint()
        for index in range(len(self.units)):
            if index >= len(pasted):
                updates += [False] + [gr.update() for _ in PASTED_FIELDS[1:]]
                continue
            updates += _unit_paste(pasted[index], models)
        return updates


def unit_count(configured: Any) -> int:
    """The number of units to show: the "number of units" option (`control_net_unit_count`), 3 when unset."""
    try:
        return min(max(int(configured), 1), 10) if configured not in (None, "") else DEFAULT_UNITS
    except (TypeError, ValueError):
        return DEFAULT_UNITS


def _slider_update(slider: Slider | None, value: float | None = None) -> dict:
    """A threshold/resolution slider shaped for a preprocessor: hidden when it has no such parameter."""
    if slider is None:
        return gr.update(visible=False)
    return gr.update(visible=True, label=slider.name, minimum=slider.minimum, maximum=slider.maximum,
                     step=slider.step, value=slider.value if value is None else value)


def _unit_paste(unit: ControlUnit, models: list[str]) -> list[Any]:
    """Updates for one unit's `PASTED_FIELDS`: the values, the model list as it is now, and the sliders shaped for
    the pasted preprocessor (the module's `input` event, which reshapes them, does not fire on a paste)."""
    values = widget_values(unit, models)
    spec = preprocessor_spec(values["module"])
    sliders = {"processor_res": _slider_update(spec.resolution, values["processor_res"]),
               "threshold_a": _slider_update(spec.threshold_a, values["threshold_a"]),
               "threshold_b": _slider_update(spec.threshold_b, values["threshold_b"])}
    if values["pixel_perfect"]:
        sliders["processor_res"]["visible"] = False
    updates = {**values, **sliders, "model": gr.update(choices=models, value=values["model"] or NO_MODEL)}
    return [updates[name] for name in PASTED_FIELDS]


def _module_updates(module: str, pixel_perfect: bool) -> list[dict]:
    """Resolution and threshold sliders for a newly chosen preprocessor (its defaults, as the extension)."""
    spec = preprocessor_spec(module)
    resolution = _slider_update(spec.resolution)
    if spec.resolution is not None and pixel_perfect:
        resolution["visible"] = False
    return [resolution, _slider_update(spec.threshold_a), _slider_update(spec.threshold_b)]


def _build_unit(control: ControlUI, tab: str, index: int, img2img: bool) -> UnitWidgets:
    prefix = f"{tab}_controlnet_unit{index}"
    with gr.Row():
        image = gr.Image(label="Control image", type="pil", image_mode="RGBA", sources=["upload", "clipboard"],
                         height=260, elem_id=f"{prefix}_image")
        preview_image = gr.Image(label="Preprocessor preview", type="pil", interactive=False, height=260,
                                 elem_id=f"{prefix}_preview_image")
    with gr.Row():
        enabled = gr.Checkbox(label="Enable", value=False, elem_id=f"{prefix}_enabled")
        use_input = gr.Checkbox(label="Use the img2img input", value=False, visible=img2img,
                                elem_id=f"{prefix}_use_input")
        pixel_perfect = gr.Checkbox(label="Pixel Perfect", value=False, elem_id=f"{prefix}_pixel_perfect")
    with gr.Row(elem_classes=[TOOLS_ROW_CLASS]):
        module = gr.Dropdown(label="Preprocessor", choices=module_list(alias_names=True), value="none",
                             elem_id=f"{prefix}_module", scale=2, min_width=160)
        preview = gr.Button("Preview", elem_id=f"{prefix}_preview", size="sm", scale=0, min_width=90)
        model = gr.Dropdown(label="Model", choices=control.models_for_checkpoint(), value=NO_MODEL,
                            elem_id=f"{prefix}_model", scale=3, min_width=200)
        refresh = gr.Button(REFRESH_SYMBOL, elem_id=f"{prefix}_refresh", scale=0, min_width=40,
                            elem_classes=["icon-button"])
    weight = gr.Slider(label="Control Weight", minimum=0.0, maximum=2.0, step=0.05, value=1.0,
                       elem_id=f"{prefix}_weight")
    with gr.Row():
        guidance_start = gr.Slider(label="Starting Control Step", minimum=0.0, maximum=1.0, step=0.01, value=0.0,
                                   elem_id=f"{prefix}_guidance_start")
        guidance_end = gr.Slider(label="Ending Control Step", minimum=0.0, maximum=1.0, step=0.01, value=1.0,
                                 elem_id=f"{prefix}_guidance_end")
    processor_res = gr.Slider(label="Preprocessor Resolution", minimum=64, maximum=2048, step=1,
                              value=DEFAULT_PROCESSOR_RES, visible=False, elem_id=f"{prefix}_processor_res")
    with gr.Row():
        threshold_a = gr.Slider(label="Threshold A", minimum=0, maximum=255, step=1, value=100, visible=False,
                                elem_id=f"{prefix}_threshold_a")
        threshold_b = gr.Slider(label="Threshold B", minimum=0, maximum=255, step=1, value=200, visible=False,
                                elem_id=f"{prefix}_threshold_b")
    control_mode = gr.Radio(label="Control Mode", choices=list(CONTROL_MODES), value=CONTROL_MODES[0],
                            elem_id=f"{prefix}_control_mode")
    resize_mode = gr.Radio(label="Resize Mode", choices=list(CONTROL_RESIZE_MODES), value=CONTROL_RESIZE_MODES[1],
                           elem_id=f"{prefix}_resize_mode")
    return UnitWidgets(enabled, image, use_input, module, model, weight, guidance_start, guidance_end,
                       control_mode, resize_mode, pixel_perfect, processor_res, threshold_a, threshold_b, refresh,
                       preview, preview_image, gr.State(None))


def _wire_unit(control: ControlUI, tab: str, index: int, unit: UnitWidgets, init_image: gr.Image | None) -> None:
    sliders = [unit.processor_res, unit.threshold_a, unit.threshold_b]
    unit.module.input(_module_updates, inputs=[unit.module, unit.pixel_perfect], outputs=sliders, api_name=False)
    unit.pixel_perfect.change(
        lambda perfect, module: gr.update(visible=not perfect and preprocessor_spec(module).resolution is not None),
        inputs=[unit.pixel_perfect, unit.module], outputs=[unit.processor_res], api_name=False)
    # Uploading an image ticks Enable, as the extension does (the user can untick it again).
    unit.image.upload(lambda: True, outputs=[unit.enabled], api_name=False)
    unit.image.change(lambda image: image, inputs=[unit.image], outputs=[unit.image_state],
                      api_name=f"{tab}_controlnet_image_{index}")

    def preview(module, image, processor_res, threshold_a, threshold_b, use_input=False, init=None):
        source = init if (use_input and init is not None) else image
        if source is None:
            raise gr.Error("Upload a control image first" + (" (or tick “Use the img2img input”)." if init_image
                                                             else "."))
        values = UnitValues(enabled=True, image=source, module=module, processor_res=processor_res,
                            threshold_a=threshold_a, threshold_b=threshold_b)
        try:
            return control.preview(values.unit(index, img2img=False), source)
        except WebUIError as exc:
            raise gr.Error(str(exc)) from exc

    inputs = [unit.module, unit.image, unit.processor_res, unit.threshold_a, unit.threshold_b]
    if init_image is not None:
        inputs += [unit.use_input, init_image]
    unit.preview.click(preview, inputs=inputs, outputs=[unit.preview_image],
                       api_name=f"{tab}_controlnet_preview_{index}")


def _build_save_maps(options: OptionsService, tab: str) -> None:
    """"Save detected maps": the option `control_net_detectmap_autosaving`, shown where the maps are made."""
    save = gr.Checkbox(label="Save detected maps next to the images", value=bool(options.get(SAVE_MAPS_OPTION)),
                       elem_id=f"{tab}_controlnet_save_maps")

    def store(value: bool) -> None:
        try:
            options.update({SAVE_MAPS_OPTION: bool(value)})
        except WebUIError as exc:
            raise gr.Error(str(exc)) from exc

    save.input(store, inputs=[save], outputs=[], api_name=f"{tab}_controlnet_save_maps")


def build_controlnet_section(control: ControlUI, tab: str, unit_count: int, init_image: gr.Image | None = None,
                             quick: Quicksettings | None = None, options: OptionsService | None = None
                             ) -> ControlNetSection:
    """The accordion with `unit_count` units. `init_image` (img2img) feeds "Use the img2img input" and the preview;
    with `quick`, the model lists are filtered again once a checkpoint from the quicksettings has loaded; with
    `options`, a checkbox sets the "save detected maps" option (the same one Settings shows)."""
    units = []
    with gr.Accordion("ControlNet", open=False, elem_id=f"{tab}_controlnet"):
        if options is not None:
            _build_save_maps(options, tab)
        with gr.Tabs(elem_id=f"{tab}_controlnet_tabs"):
            for index in range(max(1, unit_count)):
                with gr.Tab(f"ControlNet Unit {index}", elem_id=f"{tab}_controlnet_unit{index}_tab"):
                    unit = _build_unit(control, tab, index, init_image is not None)
                    _wire_unit(control, tab, index, unit, init_image)
                    units.append(unit)
    models = [unit.model for unit in units]

    def model_choices(*current):
        names = control.models_for_checkpoint()
        return [gr.update(choices=names, value=value if value in names else NO_MODEL) for value in current]

    def refreshed(*current):
        control.refresh()
        return model_choices(*current)

    for index, unit in enumerate(units):
        unit.refresh.click(refreshed, inputs=models, outputs=models, api_name=f"{tab}_controlnet_refresh_{index}")
    selected = getattr(quick, "selected", None) if quick is not None else None
    if selected is not None:  # after the load, so the family is the new checkpoint's
        selected.then(model_choices, inputs=models, outputs=models, api_name=False)
    elif quick is not None:
        quick.checkpoint.change(model_choices, inputs=models, outputs=models, api_name=False)
    return ControlNetSection(tuple(units), init_image is not None, control)
