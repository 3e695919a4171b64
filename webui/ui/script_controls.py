"""The "Script" dropdown of the generation tabs: None, X/Y/Z plot, Prompt matrix (and on img2img Ultimate SD
upscale, whose controls the img2img tab passes in), their controls, and the widgets' `ScriptSpec` decoder.

Why one module: a tab only places the controls (`build_script_controls`), adds `request_inputs()` to its Generate
inputs and submits `spec(...)` through the script service (`ScriptService.submit`; the API decodes A1111's
`script_args` into the same `ScriptSpec`). With "None" that is the plain generation. The scripts' results answer like a
generation result (grids first), so the tab's gallery/progress code stays as it is.
Enumerable axes (samplers, schedule types, checkpoints, VAEs, styles, hires upscalers) get a multi-select picker
filled from the services when the axis type is chosen, so the lists are current (a checkpoint added a minute ago).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.core.prompt_matrix import PROMPT_TYPES, SEPARATORS, PromptMatrixOptions
from webui.core.prompt_matrix import SCRIPT_NAME as MATRIX_SCRIPT
from webui.core.script_spec import PLAIN, ScriptSpec
from webui.core.tiled_upscale import SCRIPT_ARGS as UPSCALE_SCRIPT_ARGS
from webui.core.tiled_upscale import SCRIPT_NAME as UPSCALE_SCRIPT
from webui.core.tiled_upscale import options_from_script_args
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_axis_types import axis_type, axis_type_labels
from webui.core.xyz_plan import SCRIPT_NAME as XYZ_SCRIPT
from webui.core.xyz_plan import XyzOptions
from webui.services.script_service import ScriptService
from webui.ui.sentinels import NONE as SCRIPT_NONE
from webui.ui.sentinels import NOTHING

SCRIPT_NAMES = (SCRIPT_NONE, XYZ_SCRIPT, MATRIX_SCRIPT)
AXIS_NAMES = ("X", "Y", "Z")
AXIS_DEFAULTS = ("Seed", NOTHING, NOTHING)  # A1111's defaults
FILL_SYMBOL = "\u2630"  # ☰ fills the picker with every choice (A1111's 📒; a DejaVu glyph, not an emoji)
AXIS_VALUES = 3 * 3  # (type, text, picks) per axis
XYZ_OPTIONS = 8
MATRIX_OPTIONS = 5
UPSCALE_OPTIONS = len(UPSCALE_SCRIPT_ARGS) - 1  # A1111's extension order without its leading info value
# The upscaler dropdown's place among the upscale widgets (A1111's order without the info value).
UPSCALER_WIDGET = [arg.label for arg in UPSCALE_SCRIPT_ARGS[1:]].index("Upscaler")


@dataclass(frozen=True)
class UpscaleScript:
    """The Ultimate SD upscale controls a tab offers: `build` makes the group and its widgets (in
    `UPSCALE_SCRIPT_ARGS` order without info) for a tab prefix; `upscaler_names` is re-read when the script is
    chosen (a model file added a minute ago)."""

    build: Callable[[str], tuple[gr.Group, tuple[Any, ...]]]
    upscaler_names: Callable[[], list[str]]


@dataclass(frozen=True)
class AxisWidgets:
    type: gr.Dropdown
    values: gr.Textbox
    picks: gr.Dropdown
    fill: gr.Button

    def inputs(self) -> list[Any]:
        return [self.type, self.values, self.picks]


@dataclass(frozen=True)
class ScriptControls:
    """The script widgets of one tab; `request_inputs()` order is what `submit` reads."""

    script: gr.Dropdown
    axes: tuple[AxisWidgets, ...]
    xyz_options: tuple[Any, ...]
    matrix_options: tuple[Any, ...]
    upscale_options: tuple[Any, ...] = ()  # img2img only

    def request_inputs(self) -> list[Any]:
        return [self.script, *(w for axis in self.axes for w in axis.inputs()), *self.xyz_options,
                *self.matrix_options, *self.upscale_options]

    def spec(self, values: Sequence[Any], upscalers: Callable[[], Sequence[str]]) -> ScriptSpec:
        """The `ScriptSpec` for `values` in `request_inputs()` order."""
        return script_spec_from_widgets(values, upscalers)


def script_spec_from_widgets(values: Sequence[Any], upscalers: Callable[[], Sequence[str]]) -> ScriptSpec:
    """`values` in `ScriptControls.request_inputs()` order -> the script to run; missing values (old API callers)
    mean "None". `upscalers` gives the names an upscaler index points into (read only for the upscale script)."""
    name = str(values[0]) if values else SCRIPT_NONE
    if name == XYZ_SCRIPT:
        axes, options = xyz_arguments(values[1:])
        return ScriptSpec.xyz_plot((axes[0], axes[1], axes[2]), options)
    if name == MATRIX_SCRIPT:
        return ScriptSpec.prompt_matrix(matrix_options(values[1 + AXIS_VALUES + XYZ_OPTIONS:]))
    if name == UPSCALE_SCRIPT:
        start = 1 + AXIS_VALUES + XYZ_OPTIONS + MATRIX_OPTIONS
        return ScriptSpec.tiled_upscale(options_from_script_args([None, *values[start:start + UPSCALE_OPTIONS]],
                                                                 upscalers()))
    return PLAIN


def xyz_arguments(values: Sequence[Any]) -> tuple[list[AxisInput], XyzOptions]:
    """Widget values (3 x (type, text, picks), then the 8 options) -> the services' arguments."""
    axes = [AxisInput(str(values[i] or NOTHING), str(values[i + 1] or ""), tuple(values[i + 2] or ()))
            for i in range(0, AXIS_VALUES, 3)]
    legend, keep, vary_x, vary_y, vary_z, sub_images, sub_grids, margin = values[AXIS_VALUES:AXIS_VALUES + XYZ_OPTIONS]
    options = XyzOptions(draw_legend=bool(legend), include_sub_images=bool(sub_images),
                         include_sub_grids=bool(sub_grids), keep_random_seeds=bool(keep),
                         vary_seeds=(bool(vary_x), bool(vary_y), bool(vary_z)), margin_size=int(margin or 0))
    return axes, options


def matrix_options(values: Sequence[Any]) -> PromptMatrixOptions:
    """Widget values (put at start, different seeds, prompt type, separator, margin) -> options."""
    at_start, different, prompt_type, separator, margin = values[:5]
    return PromptMatrixOptions(put_at_start=bool(at_start), different_seeds=bool(different),
                               prompt_type=str(prompt_type), separator=str(separator), margin_size=int(margin or 0))


def axis_updates(scripts: ScriptService, label: str) -> tuple[Any, Any, Any]:
    """For a chosen axis type: the text box (hidden for enumerable axes), the picker (their current choices) and
    the fill button."""
    kind = axis_type(label)
    choices = scripts.script_choices(kind.choices) if kind.choices else []
    enumerable = bool(kind.choices)
    return (gr.update(visible=not enumerable and kind.label != NOTHING, info=kind.note),
            gr.update(visible=enumerable, choices=choices, value=[]), gr.update(visible=enumerable))


def build_script_controls(scripts: ScriptService, tab: str, upscale: UpscaleScript | None = None) -> ScriptControls:
    """The Script dropdown and the scripts' controls (hidden until chosen); `tab` prefixes ids and api_names;
    `scripts` fills the X/Y/Z pickers. Ultimate SD upscale is offered only where the tab passes its controls
    (img2img: it redraws an input image)."""
    names = [*SCRIPT_NAMES, UPSCALE_SCRIPT] if upscale is not None else list(SCRIPT_NAMES)
    script = gr.Dropdown(label="Script", choices=names, value=SCRIPT_NONE, elem_id=f"{tab}_script")
    with gr.Group(visible=False, elem_id=f"{tab}_script_xyz") as xyz_group:
        axes = tuple(_axis_row(scripts, tab, name, default) for name, default in zip(AXIS_NAMES, AXIS_DEFAULTS,
                                                                                      strict=True))
        xyz_options = _xyz_option_widgets(tab)
    with gr.Group(visible=False, elem_id=f"{tab}_script_prompt_matrix") as matrix_group:
        matrix = _matrix_option_widgets(tab)
    if upscale is None:
        script.change(lambda name: (gr.update(visible=name == XYZ_SCRIPT), gr.update(visible=name == MATRIX_SCRIPT)),
                      inputs=[script], outputs=[xyz_group, matrix_group], api_name=f"{tab}_script_select")
        return ScriptControls(script, axes, xyz_options, matrix)
    upscale_group, upscale_widgets = upscale.build(tab)
    upscaler = upscale_widgets[UPSCALER_WIDGET]

    def select(name: str) -> tuple[Any, ...]:
        """Show the chosen script's controls; the upscaler list is re-read (a model file added a minute ago)."""
        return (gr.update(visible=name == XYZ_SCRIPT), gr.update(visible=name == MATRIX_SCRIPT),
                gr.update(visible=name == UPSCALE_SCRIPT), gr.update(choices=upscale.upscaler_names()))

    script.change(select, inputs=[script], outputs=[xyz_group, matrix_group, upscale_group, upscaler],
                  api_name=f"{tab}_script_select")
    return ScriptControls(script, axes, xyz_options, matrix, upscale_widgets)


def _axis_row(scripts: ScriptService, tab: str, name: str, default: str) -> AxisWidgets:
    with gr.Row():
        kind = gr.Dropdown(label=f"{name} type", choices=axis_type_labels(), value=default, scale=1,
                           elem_id=f"{tab}_xyz_{name.lower()}_type")
        values = gr.Textbox(label=f"{name} values", value="", lines=1, scale=3, visible=default != NOTHING,
                            elem_id=f"{tab}_xyz_{name.lower()}_values",
                            placeholder='1-5, 1-10 (+2), 1-10 [5], "a, b",c')
        # Custom values allowed: the choices change with the axis type, and API callers send picks directly.
        picks = gr.Dropdown(label=f"{name} values", choices=[], value=[], multiselect=True, visible=False, scale=3,
                            allow_custom_value=True, elem_id=f"{tab}_xyz_{name.lower()}_picks")
        fill = gr.Button(FILL_SYMBOL, visible=False, scale=0, min_width=40, elem_id=f"{tab}_xyz_{name.lower()}_fill")
    kind.change(lambda label: axis_updates(scripts, label), inputs=[kind], outputs=[values, picks, fill],
                api_name=f"{tab}_xyz_{name.lower()}_type")
    fill.click(lambda label: scripts.script_choices(axis_type(label).choices or ""),
               inputs=[kind], outputs=[picks], api_name=f"{tab}_xyz_{name.lower()}_fill")
    return AxisWidgets(kind, values, picks, fill)


def _xyz_option_widgets(tab: str) -> tuple[Any, ...]:
    """In `xyz_arguments` order: legend, keep -1, vary X/Y/Z, sub-images, sub-grids, margin."""
    with gr.Row():
        legend = gr.Checkbox(label="Draw legend", value=True, elem_id=f"{tab}_xyz_draw_legend")
        keep = gr.Checkbox(label="Keep -1 for seeds", value=False, elem_id=f"{tab}_xyz_keep_random_seeds")
        vary = [gr.Checkbox(label=f"Vary seeds for {name}", value=False, elem_id=f"{tab}_xyz_vary_seeds_{name}")
                for name in "xyz"]
    with gr.Row():
        sub_images = gr.Checkbox(label="Include sub-images", value=False, elem_id=f"{tab}_xyz_include_sub_images")
        sub_grids = gr.Checkbox(label="Include sub-grids", value=False, elem_id=f"{tab}_xyz_include_sub_grids")
        margin = gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, step=2, value=0,
                           elem_id=f"{tab}_xyz_margin_size")
    return legend, keep, *vary, sub_images, sub_grids, margin


def _matrix_option_widgets(tab: str) -> tuple[Any, ...]:
    """In `matrix_options` order: put at start, different seeds, prompt type, separator, margin."""
    with gr.Row():
        at_start = gr.Checkbox(label="Put variable parts at start of prompt", value=False,
                               elem_id=f"{tab}_matrix_put_at_start")
        different = gr.Checkbox(label="Use different seed for each picture", value=False,
                                elem_id=f"{tab}_matrix_different_seeds")
    with gr.Row():
        prompt_type = gr.Radio(label="Select prompt", choices=list(PROMPT_TYPES), value=PROMPT_TYPES[0],
                               elem_id=f"{tab}_matrix_prompt_type")
        separator = gr.Radio(label="Select joining char", choices=list(SEPARATORS), value="comma",
                             elem_id=f"{tab}_matrix_separator")
        margin = gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, step=2, value=0,
                           elem_id=f"{tab}_matrix_margin_size")
    return at_start, different, prompt_type, separator, margin
