"""A1111 infotext: the text stored in every image that records how it was made.

Why one module: the UI ("PNG Info", "send to txt2img"), the API (`png-info`, the `info` field) and the image saver
all read or write this format, and external tools (sd-parsers, civitai) parse it by its exact shape. Keeping the
whole format here means there is exactly one place to get it right. Pure Python: no torch, no PIL.

Shape (see docs/FORMATS.md, "Infotext")::

    <prompt, may span lines>
    Negative prompt: <negative, may span lines>      (omitted when empty)
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ..., Version: x.y
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from webui.core.control import units_from_params
from webui.core.samplers import split_legacy_name

logger = logging.getLogger(__name__)

NEGATIVE_PREFIX = "Negative prompt:"

# A1111's own order for the leading keys; everything else follows in insertion order, then "Version".
LEADING_KEYS: tuple[str, ...] = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "VAE hash", "VAE",
    "Variation seed", "Variation seed strength", "Seed resize from", "Denoising strength", "Clip skip",
)
TRAILING_KEYS: tuple[str, ...] = ("Version",)

# The exact expression A1111 uses, so that we split a parameter line the same way every other reader does.
PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
MIN_PARAM_PAIRS = 3

DEFAULT_PARAMS: Mapping[str, str] = {"Clip skip": "1", "Schedule type": "Automatic"}


# ----------------------------------------------------------------------------------------------------------------
# Writing


def build_infotext(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """The infotext A1111 would write for these values.

    `params` maps infotext keys ("Steps", "CFG scale", ...) to values of any simple type; None and empty values are
    left out, floats are written without a useless ".0", a `(w, h)` pair becomes "WxH".
    """
    lines = [prompt]
    if negative_prompt:
        lines.append(f"{NEGATIVE_PREFIX} {negative_prompt}")
    param_line = format_param_line(params)
    if param_line:
        lines.append(param_line)
    return "\n".join(lines)


def format_param_line(params: Mapping[str, object]) -> str:
    """`Key: value, Key: value` in A1111's key order, quoting values that would break the line apart."""
    pairs = []
    for key in _ordered_keys(params):
        text = format_value(params[key])
        if text is None or (key == "Clip skip" and _is_default_clip_skip(text)):
            continue
        pairs.append(f"{key}: {quote_value(text)}")
    return ", ".join(pairs)


def _ordered_keys(params: Mapping[str, object]) -> list[str]:
    """Leading keys in A1111's order, then the caller's other keys as given, then the trailing keys."""
    fixed = set(LEADING_KEYS) | set(TRAILING_KEYS)
    leading = [key for key in LEADING_KEYS if key in params]
    middle = [key for key in params if key not in fixed]
    trailing = [key for key in TRAILING_KEYS if key in params]
    return leading + middle + trailing


def _is_default_clip_skip(text: str) -> bool:
    """A1111 writes "Clip skip" only when it changes something (> 1)."""
    try:
        return float(text) <= 1
    except ValueError:
        return False


def format_value(value: object) -> str | None:
    """A value as A1111 prints it, or None when it should be left out (None or empty)."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = format_float(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        text = f"{value[0]}x{value[1]}"
    else:
        text = str(value)
    return text or None


def format_float(value: float) -> str:
    """7.0 -> "7", 7.5 -> "7.5": users and tools compare these strings, and A1111 never writes "7.0"."""
    if math.isfinite(value) and value.is_integer():
        return str(int(value))
    return repr(value)


def quote_value(text: str) -> str:
    """JSON-quote a value that the parameter regex would otherwise split or mangle.

    A1111 quotes on `,`, `:` and newlines; we also quote values that start with a quote or carry surrounding
    whitespace, because the parser would otherwise decode or strip them. Quoted values are valid for A1111 too.
    """
    needs_quotes = (
        any(ch in text for ch in ",:\n")
        or text.startswith('"')
        or text != text.strip()
    )
    return json.dumps(text, ensure_ascii=False) if needs_quotes else text


# ----------------------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class ParsedInfotext:
    """An infotext split into its parts. `params` holds every key found, as decoded strings (unknown keys too),
    so nothing a user or an extension wrote is lost when an image is re-generated or re-saved."""

    prompt: str = ""
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A raw parameter value, falling back to A1111's defaults for keys old infotexts leave out."""
        if key in self.params:
            return self.params[key]
        return DEFAULT_PARAMS.get(key, default)

    def to_generation_fields(self) -> dict[str, object]:
        """Typed fields with the A1111 API's names (`steps`, `cfg_scale`, `sampler_name`, ...).

        Core fields are always present (defaults for missing keys); optional ones only when the infotext has them.
        A malformed value falls back to its default (or is left out) with a debug log instead of raising: a pasted
        infotext should fill in what it can, like A1111 does.
        """
        fields: dict[str, object] = {"prompt": self.prompt, "negative_prompt": self.negative_prompt}
        fields.update(_core_fields(self))
        fields.update(_optional_fields(self))
        return fields


def parse_infotext(text: str) -> ParsedInfotext:
    """Split an infotext into prompt, negative prompt and parameters, the way A1111 reads it.

    The last line is the parameter line only if the regex finds at least three `Key: value` pairs; otherwise the
    whole text is prompt. Lines are stripped (as A1111 does), so surrounding whitespace is not preserved.
    """
    *lines, last_line = text.strip().split("\n")
    if len(PARAM_RE.findall(last_line)) < MIN_PARAM_PAIRS:
        lines.append(last_line)
        last_line = ""
    prompt, negative = _split_prompts(lines)
    return ParsedInfotext(prompt=prompt, negative_prompt=negative, params=parse_param_line(last_line))


def _split_prompts(lines: list[str]) -> tuple[str, str]:
    """Lines before the `Negative prompt:` line are the prompt; that line and the rest are the negative."""
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for raw in lines:
        line = raw.strip()
        if target is prompt_lines and line.startswith(NEGATIVE_PREFIX):
            target = negative_lines
            line = line[len(NEGATIVE_PREFIX):].strip()
        target.append(line)
    return _join_lines(prompt_lines), _join_lines(negative_lines)


def _join_lines(lines: list[str]) -> str:
    """Join like A1111: leading empty lines vanish, later ones are kept."""
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def parse_param_line(line: str) -> dict[str, str]:
    """`Key: value, ...` -> {key: decoded value}; quoted values are JSON-decoded, the rest kept verbatim."""
    params: dict[str, str] = {}
    for key, value in PARAM_RE.findall(line):
        params[key.strip()] = _unquote(value)
    return params


def _unquote(value: str) -> str:
    """JSON-decode a quoted value; a value that only looks quoted is kept as written (A1111 does the same)."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


# ----------------------------------------------------------------------------------------------------------------
# Typed conversion


def _core_fields(parsed: ParsedInfotext) -> dict[str, object]:
    """Fields every generation needs; defaults match a fresh A1111 txt2img tab."""
    sampler, scheduler = _sampler_and_schedule(parsed)
    width, height = _size(parsed.params.get("Size")) or (512, 512)
    return {
        "steps": _convert(parsed.params.get("Steps"), _to_int, 20),
        "sampler_name": sampler,
        "scheduler": scheduler,
        "cfg_scale": _convert(parsed.params.get("CFG scale"), float, 7.0),
        "seed": _convert(parsed.params.get("Seed"), _to_int, -1),
        "width": width,
        "height": height,
        "clip_skip": _convert(parsed.get("Clip skip"), _to_int, 1),
    }


def _sampler_and_schedule(parsed: ParsedInfotext) -> tuple[str, str]:
    """An explicit "Schedule type" wins; old infotexts carry it in the sampler name ("DPM++ 2M Karras")."""
    raw_sampler = parsed.params.get("Sampler", "Euler a")
    explicit = parsed.params.get("Schedule type")
    sampler, schedule = split_legacy_name(raw_sampler, explicit or "Automatic")
    return sampler, explicit or schedule


def _convert(raw: str | None, convert: Callable[[str], object], default: object) -> object:
    """`convert(raw)`, or `default` when the key is missing or its value is malformed."""
    if raw is None:
        return default
    try:
        return convert(raw.strip())
    except (ValueError, OverflowError):
        logger.debug("Ignoring malformed infotext value %r", raw)
        return default


def _to_int(text: str) -> int:
    """int() that also accepts "20.0", which some tools write for integer settings."""
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise
        return int(number)


def _size(raw: str | None) -> tuple[int, int] | None:
    """"512x768" -> (512, 768); None when missing or not of that shape."""
    match = SIZE_RE.match(raw.strip()) if raw is not None else None
    return (int(match.group(1)), int(match.group(2))) if match else None


# (infotext key, field name, converter) for fields copied only when present.
_OPTIONAL_FIELDS: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("Model", "model", str),
    ("Model hash", "model_hash", str),
    ("VAE", "vae", str),
    ("VAE hash", "vae_hash", str),
    ("Variation seed", "subseed", _to_int),
    ("Variation seed strength", "subseed_strength", float),
    ("Denoising strength", "denoising_strength", float),
    ("Hires upscale", "hr_scale", float),
    ("Hires steps", "hr_second_pass_steps", _to_int),
    ("Hires upscaler", "hr_upscaler", str),
    ("Mask blur", "mask_blur", _to_int),
    ("Shift", "shift", float),  # flow-matching families (AuraFlow, Flux)
    ("Distilled CFG Scale", "distilled_cfg_scale", float),  # Flux dev (Forge's key)
    ("Version", "version", str),
)

# (infotext key, width field, height field) for "WxH" values copied only when present.
_OPTIONAL_SIZES: tuple[tuple[str, str, str], ...] = (
    ("Seed resize from", "seed_resize_from_w", "seed_resize_from_h"),
    ("Hires resize", "hr_resize_x", "hr_resize_y"),
)


def _optional_fields(parsed: ParsedInfotext) -> dict[str, object]:
    """Fields copied only when the infotext has them; any Hires key means the hires pass was on."""
    fields: dict[str, object] = {}
    for key, name, convert in _OPTIONAL_FIELDS:
        value = _convert(parsed.params.get(key), convert, None)
        if value is not None:
            fields[name] = value
    for key, width_name, height_name in _OPTIONAL_SIZES:
        size = _size(parsed.params.get(key))
        if size is not None:
            fields[width_name], fields[height_name] = size
    if "hr_scale" in fields or "hr_resize_x" in fields:
        fields["enable_hr"] = True
    units = units_from_params(parsed.params)  # `ControlNet N` entries: the units without their images
    if units:
        fields["control_units"] = units
    return fields
