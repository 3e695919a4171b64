"""The Settings tab: the options these issues use, saved to `config.json` on "Apply settings".

Why widgets come from the option specs: labels, help and allowed values are declared once in `webui.core.options`
(the API validates against the same specs), so the tab cannot drift from what the options accept.
"Paths for saving" names server folders: it is left out while server folders are hidden (an exposed server, A1111's
--hide-ui-dir-config), and then `apply_settings` has no such parameters.
"""
from __future__ import annotations

import inspect
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.core.options import OPTION_SPECS, option_spec
from webui.services.info_service import InfoService
from webui.services.option_service import OptionsService
from webui.ui.components import Quicksettings, quicksettings_visibility
from webui.ui.formatting import error_markdown
from webui.ui.tabs.settings.mapping import settings_message

# Sections and the option keys they show, in A1111's order.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Saving images/grids", ("samples_save", "samples_format", "samples_filename_pattern", "grid_save")),
    ("Paths for saving", ("outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples")),
    ("Upscaling", ("ESRGAN_tile", "ESRGAN_tile_overlap")),
    ("Stable Diffusion", ("CLIP_stop_at_last_layers",)),
    ("User interface", ("quicksettings_list", "default_sampler")),
    ("Training", ("training_device_policy",)),
    # last: apply_settings takes the keys in this order, and older callers pass them by position
    ("Live previews", ("live_previews_enable", "show_progress_every_n_steps", "show_progress_type")),
    ("Queue", ("queue_retry_interrupted",)),  # after the others: callers passing them by position keep working
)
SETTING_KEYS: tuple[str, ...] = tuple(key for _, keys in SECTIONS for key in keys)
FOLDER_SECTION = "Paths for saving"


def shown_sections(hide_dir_config: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The sections this server shows: without the output folders while server folders are hidden."""
    return tuple(section for section in SECTIONS if not (hide_dir_config and section[0] == FOLDER_SECTION))
# Numeric options shown as sliders: (minimum, maximum, step), A1111's ranges.
_SLIDERS: dict[str, tuple[int, int, int]] = {"ESRGAN_tile": (0, 512, 16), "ESRGAN_tile_overlap": (0, 48, 1),
                                             "show_progress_every_n_steps": (-1, 32, 1)}


def _widget(options: OptionsService, info: InfoService, key: str) -> gr.components.Component:
    """One option's widget, chosen by its key (the spec gives label, help and choices)."""
    spec = option_spec(key)
    if spec is None:
        raise KeyError(f"No option spec for settings key {key!r}.")
    common: dict[str, Any] = {"label": spec.label, "info": spec.help or None, "elem_id": f"setting_{key}",
                              "value": options.get(key)}
    if key in ("samples_save", "grid_save", "live_previews_enable"):
        return gr.Checkbox(**common)
    if spec.choices is not None:  # samples_format, training_device_policy
        return gr.Radio(choices=list(spec.choices or ()), **common)
    if key == "CLIP_stop_at_last_layers":
        # Not elem_id setting_...: the quicksettings slider has that id (A1111 shows it in one place at a time).
        common["elem_id"] = "settings_tab_CLIP_stop_at_last_layers"
        return gr.Slider(minimum=1, maximum=12, step=1, **common)
    if key in _SLIDERS:
        low, high, step = _SLIDERS[key]
        return gr.Slider(minimum=low, maximum=high, step=step, **common)
    if key == "default_sampler":
        return gr.Dropdown(choices=info.sampler_names(), **common)
    if key == "quicksettings_list":
        return gr.Dropdown(choices=[s.key for s in OPTION_SPECS], multiselect=True, allow_custom_value=True,
                           **common)
    return gr.Textbox(**common)


def build_settings_tab(options: OptionsService, info: InfoService, hide_dir_config: bool, quick: Quicksettings,
                       blocks: gr.Blocks | None = None) -> None:
    """The tab, "Apply settings" (all values validated together; only changed keys reported), and with `blocks`
    a page-load refresh so a reloaded page shows the stored values and the quicksettings the list asks for.
    `info` lists the samplers; `hide_dir_config` leaves out the output folders."""
    # A config.json that could not be used at startup: say so where the settings are (the next save replaces it).
    warning = options.options_warning()
    gr.Markdown(f"**Warning:** {warning}" if warning else "", visible=bool(warning), elem_id="settings_warning")
    with gr.Row():
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit")
    result = gr.Markdown("", elem_id="settings_result")
    widgets: dict[str, gr.components.Component] = {}
    sections = shown_sections(hide_dir_config)
    for title, keys in sections:
        with gr.Accordion(title, open=True, elem_id=f"settings_section_{title.split()[0].lower()}"):
            for key in keys:
                widgets[key] = _widget(options, info, key)
    setting_keys = tuple(key for _, keys in sections for key in keys)
    components = [widgets[key] for key in setting_keys]

    def current() -> list[Any]:
        return [options.get(key) for key in setting_keys]

    def on_apply(*values: Any) -> list[Any]:
        """Validate all, store all (or none), report what changed; never raise into Gradio."""
        try:
            before = {key: options.get(key) for key in setting_keys}
            options.set_options(dict(zip(setting_keys, values, strict=True)))
        except WebUIError as exc:
            return [error_markdown(str(exc)), *(gr.update() for _ in components), gr.update()]
        changed = [key for key in setting_keys if options.get(key) != before[key]]
        return [settings_message(changed), *current(), options.get("CLIP_stop_at_last_layers")]

    # Name the API parameters after the option keys (A1111's names) instead of param_0, param_1, ...
    on_apply.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD) for key in setting_keys])
    apply.click(on_apply, inputs=components, outputs=[result, *components, quick.clip_skip],
                api_name="apply_settings")
    # The quicksettings slider persists clip skip on its own; keep this tab's copy in step so Apply never writes
    # back a stale value.
    quick.clip_skip.release(lambda value: value, inputs=[quick.clip_skip],
                           outputs=[widgets["CLIP_stop_at_last_layers"]], api_name=False)
    if blocks is not None:
        blocks.load(lambda: [*current(), *quicksettings_visibility(options.get("quicksettings_list"))],
                    outputs=[*components, *quick.visibility_outputs()], api_name=False)
