"""The "Ultimate SD upscale" img2img script, the pure part: its options, A1111's positional `script_args`, the
plan of redraw passes, and the infotext of the result.

What the script does (A1111's extension, re-implemented): upscale the init image to the target size with an
upscaler, then redraw it tile by tile with img2img (the request's prompt, seed, sampler, steps, CFG scale and
denoising strength), each tile as an inpaint of its rectangle with `padding` pixels of context around it and its
mask blurred by `mask_blur`, pasted back before the next tile is drawn; optionally a seams-fix pass redraws bands
on the seams ("Band pass") or tiles shifted by half a tile ("Half tile offset pass").

Why the target size is rounded to a multiple of 8 (A1111's extension rounds "Scale from image size" to 64): 8 is
what the latents need, and 64 would change the aspect ratio of most images.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webui.core.errors import ValidationError
from webui.core.infotext import build_infotext, parse_infotext
from webui.core.requests import MAX_SIZE
from webui.core.tile_plan import (
    STAGE_REDRAW,
    Patch,
    TileGrid,
    band_patches,
    half_tile_patches,
    redraw_passes,
)

SCRIPT_NAME = "Ultimate SD upscale"
TARGET_SIZE_TYPES = ("From img2img settings", "Custom size", "Scale from image size")
REDRAW_MODES = ("Linear", "Chess", "None")
SEAMS_FIX_TYPES = ("None", "Band pass", "Half tile offset pass", "Half tile offset pass + intersections")
# Infotext keys of the tile runs that describe one tile's inpaint, not the upscaled image.
_TILE_ONLY_KEYS = ("Mask blur", "Masked content", "Inpaint area", "Masked area padding", "Mask mode")
_PREFIX = "Ultimate SD upscale"


@dataclass(frozen=True)
class TiledUpscaleOptions:
    """The script's options, A1111 extension defaults. A tile side of 0 means "same as the other side"."""

    upscaler: str = "None"
    target_size_type: str = TARGET_SIZE_TYPES[0]
    custom_width: int = 2048
    custom_height: int = 2048
    custom_scale: float = 2.0
    tile_width: int = 512
    tile_height: int = 0
    mask_blur: int = 8
    padding: int = 32
    redraw_mode: str = "Linear"
    seams_fix_type: str = "None"
    seams_fix_width: int = 64
    seams_fix_denoise: float = 0.35
    seams_fix_padding: int = 16
    seams_fix_mask_blur: int = 4
    save_upscaled_image: bool = True
    save_seams_fix_image: bool = False

    @property
    def tile_size(self) -> tuple[int, int]:
        return (self.tile_width or self.tile_height, self.tile_height or self.tile_width)

    def validate(self) -> None:
        """Raise `ValidationError` naming every bad option (all checked at once, before anything runs)."""
        problems = [*_choice_problems(self), *_range_problems(self)]
        if problems:
            raise ValidationError(f"{SCRIPT_NAME}: " + " ".join(problems))

    def target_size(self, source: tuple[int, int], request: tuple[int, int]) -> tuple[int, int]:
        """The upscaled canvas size for an init image of size `source` and the request's width/height."""
        if self.target_size_type == "Custom size":
            size = (self.custom_width, self.custom_height)
        elif self.target_size_type == "Scale from image size":
            size = tuple(math.ceil(side * self.custom_scale / 8) * 8 for side in source)
        else:
            size = request
        if not all(8 <= side <= MAX_SIZE for side in size):
            raise ValidationError(f"{SCRIPT_NAME}: the target size {size[0]}x{size[1]} is outside 8-{MAX_SIZE} "
                                  f"pixels; use a smaller scale.")
        return int(size[0]), int(size[1])

    def infotext_params(self) -> dict[str, object]:
        """The keys A1111's extension writes (upscaler, tile size, mask blur, padding), plus the redraw mode and
        the seams fix when one is used."""
        tile_w, tile_h = self.tile_size
        params: dict[str, object] = {f"{_PREFIX} upscaler": self.upscaler, f"{_PREFIX} tile_width": tile_w,
                                     f"{_PREFIX} tile_height": tile_h, f"{_PREFIX} mask_blur": self.mask_blur,
                                     f"{_PREFIX} padding": self.padding}
        if self.redraw_mode != "Linear":
            params[f"{_PREFIX} redraw_mode"] = self.redraw_mode
        if self.seams_fix_type != "None":
            params[f"{_PREFIX} seams_fix_type"] = self.seams_fix_type
            params[f"{_PREFIX} seams_fix_denoise"] = self.seams_fix_denoise
            params[f"{_PREFIX} seams_fix_padding"] = self.seams_fix_padding
            if self.seams_fix_type == "Band pass":
                params[f"{_PREFIX} seams_fix_width"] = self.seams_fix_width
            else:
                params[f"{_PREFIX} seams_fix_mask_blur"] = self.seams_fix_mask_blur
        return params


def _choice_problems(options: TiledUpscaleOptions) -> list[str]:
    problems = []
    for label, value, choices in (("Target size type", options.target_size_type, TARGET_SIZE_TYPES),
                                  ("Redraw type", options.redraw_mode, REDRAW_MODES),
                                  ("Seams fix type", options.seams_fix_type, SEAMS_FIX_TYPES)):
        if value not in choices:
            problems.append(f"{label} must be one of {', '.join(choices)} (got {value!r}).")
    return problems


def _range_problems(options: TiledUpscaleOptions) -> list[str]:
    problems = []
    for label, value, low, high in (("Tile width", options.tile_width, 0, MAX_SIZE),
                                    ("Tile height", options.tile_height, 0, MAX_SIZE),
                                    ("Mask blur", options.mask_blur, 0, 64), ("Padding", options.padding, 0, 512),
                                    ("Seams fix width", options.seams_fix_width, 0, 512),
                                    ("Seams fix padding", options.seams_fix_padding, 0, 512),
                                    ("Seams fix mask blur", options.seams_fix_mask_blur, 0, 64),
                                    ("Seams fix denoise", options.seams_fix_denoise, 0.0, 1.0),
                                    ("Scale", options.custom_scale, 1.0, 16.0)):
        if not low <= value <= high:
            problems.append(f"{label} must be between {low} and {high} (got {value}).")
    if min(options.tile_size) < 8:
        problems.append(f"Tile width and height must be at least 8 (one of them may be 0: same as the other; got "
                        f"{options.tile_width}x{options.tile_height}).")
    if options.target_size_type == "Custom size":
        for label, value in (("Custom width", options.custom_width), ("Custom height", options.custom_height)):
            if value % 8 or not 64 <= value <= MAX_SIZE:
                problems.append(f"{label} must be a multiple of 8 from 64 to {MAX_SIZE} (got {value}).")
    if options.seams_fix_type == "Band pass" and options.seams_fix_width < 2:
        problems.append(f"Seams fix width must be at least 2 for the band pass (got {options.seams_fix_width}).")
    return problems


# ----------------------------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class TiledUpscalePlan:
    """Everything the runner redraws, in order: the redraw passes (one for Linear, two for Chess), then the
    seams-fix patches."""

    size: tuple[int, int]
    grid: TileGrid
    redraw: tuple[tuple[Patch, ...], ...]
    seams: tuple[Patch, ...]

    @property
    def patches(self) -> tuple[Patch, ...]:
        return tuple(patch for group in self.redraw for patch in group) + self.seams

    @property
    def patch_count(self) -> int:
        return len(self.patches)


def plan_tiled_upscale(size: tuple[int, int], options: TiledUpscaleOptions) -> TiledUpscalePlan:
    """The redraw and seams-fix patches for a canvas of `size`."""
    options.validate()
    grid = TileGrid(size, options.tile_size)
    seams: tuple[Patch, ...] = ()
    if options.seams_fix_type == "Band pass":
        seams = band_patches(grid, options.seams_fix_width)
    elif options.seams_fix_type.startswith("Half tile"):
        seams = half_tile_patches(grid, intersections=options.seams_fix_type.endswith("intersections"))
    return TiledUpscalePlan(size, grid, redraw_passes(grid, options.redraw_mode), seams)


def patch_settings(patch: Patch, options: TiledUpscaleOptions, denoising_strength: float) -> tuple[float, int, int]:
    """(denoising strength, mask blur, padding) a patch is redrawn with: the request's strength and the redraw
    options for tiles, the seams-fix options for seams (the band pass's mask is its own gradient: no blur)."""
    if patch.stage == STAGE_REDRAW:
        return denoising_strength, options.mask_blur, options.padding
    blur = 0 if options.seams_fix_type == "Band pass" else options.seams_fix_mask_blur
    return options.seams_fix_denoise, blur, options.seams_fix_padding


def upscaled_infotext(tile_infotext: str, size: tuple[int, int], denoising_strength: float,
                      options: TiledUpscaleOptions) -> str:
    """The upscaled image's infotext: a tile's (prompt, model, sampler, seed ...) with the canvas size, the
    request's denoising strength and the script's keys instead of the tile's inpaint keys."""
    parsed = parse_infotext(tile_infotext)
    params: dict[str, object] = {key: value for key, value in parsed.params.items() if key not in _TILE_ONLY_KEYS}
    params.update({"Size": f"{size[0]}x{size[1]}", "Denoising strength": denoising_strength})
    params.update(options.infotext_params())
    return build_infotext(parsed.prompt, parsed.negative_prompt, params)


# ----------------------------------------------------------------------------------------------------------------
# A1111's script_args


@dataclass(frozen=True)
class ScriptArg:
    """One positional argument as `/sdapi/v1/script-info` describes it."""

    label: str
    default: Any
    choices: tuple[str, ...] | None = None


# A1111 extension order (`Script.run` after `p`); the first value is its info HTML and is ignored.
SCRIPT_ARGS: tuple[ScriptArg, ...] = (
    ScriptArg("info", None), ScriptArg("Tile width", 512), ScriptArg("Tile height", 0), ScriptArg("Mask blur", 8),
    ScriptArg("Padding", 32), ScriptArg("Seams fix width", 64), ScriptArg("Seams fix denoise", 0.35),
    ScriptArg("Seams fix padding", 16), ScriptArg("Upscaler", "None"), ScriptArg("Save upscaled image", True),
    ScriptArg("Redraw type", REDRAW_MODES[0], REDRAW_MODES), ScriptArg("Save seams fix image", False),
    ScriptArg("Seams fix mask blur", 4), ScriptArg("Seams fix type", SEAMS_FIX_TYPES[0], SEAMS_FIX_TYPES),
    ScriptArg("Target size type", TARGET_SIZE_TYPES[0], TARGET_SIZE_TYPES), ScriptArg("Custom width", 2048),
    ScriptArg("Custom height", 2048), ScriptArg("Scale", 2.0),
)


def _pick(value: Any, choices: Sequence[str], label: str) -> str:
    """A choice given by label (any case) or, as A1111's `type="index"` widgets send it, by index."""
    if isinstance(value, bool):
        raise ValidationError(f"{SCRIPT_NAME}: {label} must be a name or an index, not {value}.")
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()) or \
            (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
        if not 0 <= index < len(choices):
            raise ValidationError(f"{SCRIPT_NAME}: {label} index {index} is out of range (0-{len(choices) - 1}: "
                                  f"{', '.join(choices)}).")
        return choices[index]
    for choice in choices:
        if str(value).strip().lower() == choice.lower():
            return choice
    raise ValidationError(f"{SCRIPT_NAME}: unknown {label} {value!r}. Use one of: {', '.join(choices)}.")


def _number(value: Any, label: str, kind: type = int) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{SCRIPT_NAME}: {label} must be a number (got {value!r}).") from None
    if kind is int:
        if not number.is_integer():
            raise ValidationError(f"{SCRIPT_NAME}: {label} must be a whole number (got {value!r}).")
        return int(number)
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def options_from_script_args(args: Sequence[Any] | None, upscalers: Sequence[str]) -> TiledUpscaleOptions:
    """`script_args` in `SCRIPT_ARGS` order (missing or null values take the defaults) -> validated options.
    `upscalers` is the list an integer upscaler index points into (this server's upscaler names)."""
    args = list(args or [])

    def arg(index: int) -> Any:
        value = args[index] if index < len(args) else None
        return SCRIPT_ARGS[index].default if value is None else value

    options = TiledUpscaleOptions(
        tile_width=_number(arg(1), "Tile width"), tile_height=_number(arg(2), "Tile height"),
        mask_blur=_number(arg(3), "Mask blur"), padding=_number(arg(4), "Padding"),
        seams_fix_width=_number(arg(5), "Seams fix width"),
        seams_fix_denoise=_number(arg(6), "Seams fix denoise", float),
        seams_fix_padding=_number(arg(7), "Seams fix padding"), upscaler=_pick(arg(8), upscalers, "upscaler"),
        save_upscaled_image=_flag(arg(9)), redraw_mode=_pick(arg(10), REDRAW_MODES, "redraw type"),
        save_seams_fix_image=_flag(arg(11)), seams_fix_mask_blur=_number(arg(12), "Seams fix mask blur"),
        seams_fix_type=_pick(arg(13), SEAMS_FIX_TYPES, "seams fix type"),
        target_size_type=_pick(arg(14), TARGET_SIZE_TYPES, "target size type"),
        custom_width=_number(arg(15), "Custom width"), custom_height=_number(arg(16), "Custom height"),
        custom_scale=_number(arg(17), "Scale", float))
    options.validate()
    return options


def script_info_args(upscalers: Sequence[str]) -> list[dict[str, Any]]:
    """`SCRIPT_ARGS` as `/sdapi/v1/script-info` lists them (the upscaler's choices are this server's)."""
    rows = []
    for spec in SCRIPT_ARGS:
        choices = list(upscalers) if spec.label == "Upscaler" else list(spec.choices) if spec.choices else None
        rows.append({"label": spec.label, "value": spec.default, "minimum": None, "maximum": None, "step": None,
                     "choices": choices})
    return rows
