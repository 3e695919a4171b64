"""A1111's `script_name` / `script_args` for the built-in scripts, decoded into a `ScriptSpec` (the UI
widgets have their own thin decoder; the script service's `submit` runs either).

A1111 passes a script's UI values positionally. For "X/Y/Z plot" the order is
`[x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type, z_values, z_values_dropdown,
draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x, vary_seeds_y, vary_seeds_z,
margin_size, csv_mode]`; for "Prompt matrix" `[put_at_start, different_seeds, prompt_type, variations_delimiter,
margin_size]`. Axis types are best given by label ("Steps", "CFG Scale"); an integer is read as an index into
this server's list (`GET /sdapi/v1/script-info`), because A1111's own index table changes between versions.

"Ultimate SD upscale" (img2img only) takes the A1111 extension's order, `webui.core.tiled_upscale.SCRIPT_ARGS`:
`[info (ignored), tile_width, tile_height, mask_blur, padding, seams_fix_width, seams_fix_denoise,
seams_fix_padding, upscaler, save_upscaled_image, redraw_mode, save_seams_fix_image, seams_fix_mask_blur,
seams_fix_type, target_size_type, custom_width, custom_height, custom_scale]`. The upscaler, redraw mode, seams fix
type and target size type may be given by name or by index (the upscaler index points into this server's
`GET /sdapi/v1/upscalers` list: None, Lanczos, Nearest, then the model files).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from webui.core.errors import ValidationError
from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.script_spec import PLAIN, ExtensionScriptOptions, ScriptSpec
from webui.core.tiled_upscale import SCRIPT_NAME as UPSCALE_SCRIPT
from webui.core.tiled_upscale import options_from_script_args
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_axis_types import axis_type_labels as xyz_axis_labels
from webui.core.xyz_plan import XyzOptions

XYZ_NAMES = ("x/y/z plot", "xyz plot", "x/y plot")
MATRIX_NAMES = ("prompt matrix",)
UPSCALE_NAMES = (UPSCALE_SCRIPT.lower(),)


def script_names(img2img: bool = False) -> list[str]:
    """The script names of `/sdapi/v1/scripts` for txt2img, or with `img2img` for img2img."""
    return ["x/y/z plot", "prompt matrix", *(UPSCALE_NAMES if img2img else ())]


def _arg(args: list[Any], index: int, default: Any) -> Any:
    return args[index] if index < len(args) and args[index] is not None else default


def _axis(args: list[Any], start: int) -> AxisInput:
    kind = _arg(args, start, "Nothing")
    labels = xyz_axis_labels()
    if isinstance(kind, int) or (isinstance(kind, str) and kind.isdigit()):
        index = int(kind)
        if not 0 <= index < len(labels):
            raise ValidationError(f"X/Y/Z axis type index {index} is out of range (0-{len(labels) - 1}).")
        kind = labels[index]
    picks = _arg(args, start + 2, [])
    return AxisInput(str(kind), str(_arg(args, start + 1, "")), tuple(str(p) for p in picks or ()))


def _xyz_options(args: list[Any]) -> XyzOptions:
    return XyzOptions(draw_legend=bool(_arg(args, 9, True)), include_sub_images=bool(_arg(args, 10, False)),
                      include_sub_grids=bool(_arg(args, 11, False)), keep_random_seeds=bool(_arg(args, 12, False)),
                      vary_seeds=(bool(_arg(args, 13, False)), bool(_arg(args, 14, False)),
                                  bool(_arg(args, 15, False))),
                      margin_size=int(_arg(args, 16, 0)))


def _matrix_options(args: list[Any]) -> PromptMatrixOptions:
    return PromptMatrixOptions(put_at_start=bool(_arg(args, 0, False)), different_seeds=bool(_arg(args, 1, False)),
                               prompt_type=str(_arg(args, 2, "positive")).lower(),
                               separator=str(_arg(args, 3, "comma")).lower(), margin_size=int(_arg(args, 4, 0)))


def script_spec(name: str | None, args: Sequence[Any] | None, upscalers: Callable[[], Sequence[str]],
                extension_scripts: Mapping[str, tuple[str, str]] | None = None) -> ScriptSpec:
    """A1111's `script_name`/`script_args` -> the `ScriptSpec` to run (`PLAIN` when no script is named).
    `upscalers` gives the list an integer upscaler index points into (this server's upscaler names; read only
    when the upscale script is named, as a folder scan is not free). `extension_scripts` maps the lower-case
    names of the extensions' scripts to (extension, script); their `script_args` are passed on as given."""
    if not name or name.strip().lower() == "none":
        return PLAIN
    key = name.strip().lower()
    values = list(args or [])
    if key in XYZ_NAMES:
        return ScriptSpec.xyz_plot((_axis(values, 0), _axis(values, 3), _axis(values, 6)), _xyz_options(values))
    if key in MATRIX_NAMES:
        return ScriptSpec.prompt_matrix(_matrix_options(values))
    if key in UPSCALE_NAMES:
        return ScriptSpec.tiled_upscale(options_from_script_args(values, upscalers()))
    found = (extension_scripts or {}).get(key)
    if found is not None:
        return ScriptSpec(found[1], ExtensionScriptOptions(found[0], found[1], tuple(values)))
    known = [*script_names(img2img=True), *(extension_scripts or {})]
    raise ValidationError(f"Unknown script '{name}'. Available: {', '.join(known)}.")
