"""One way from a flat mapping of A1111 field names to a `GenerationRequest`.

Why one function: the generation tabs and the /sdapi/v1 routes describe the same request (the API body's field
names are A1111's, and the UI widgets map onto the same names), so they must agree on what a missing value means
and how a value is converted. Both produce the flat mapping and call `build_request`; the defaults live in one
table, `REQUEST_DEFAULTS`, read from the request dataclasses themselves.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from webui.core.requests import GenerationRequest, Img2ImgInputs


def _defaults(cls: type) -> Mapping[str, Any]:
    values = {}
    for item in dataclasses.fields(cls):
        if item.default is not dataclasses.MISSING:
            values[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            values[item.name] = item.default_factory()
    return values


# The single defaults table: every request field with the value it takes when the caller leaves it out.
REQUEST_DEFAULTS: Mapping[str, Any] = MappingProxyType(_defaults(GenerationRequest))
IMG2IMG_DEFAULTS: Mapping[str, Any] = MappingProxyType(_defaults(Img2ImgInputs))

# Fields where an empty value (0, "", an empty list) also means "the default", as A1111 treats them: its clients
# send `width: 0` or `sampler_name: ""` for "whatever the server uses".
EMPTY_MEANS_DEFAULT = frozenset({"prompt", "negative_prompt", "sampler_name", "scheduler", "width", "height",
                                 "batch_size", "n_iter", "styles", "hr_upscaler", "subseed_strength",
                                 "hr_second_pass_steps", "hr_resize_x", "hr_resize_y"})
# A1111 field names that name the same request field (older clients send `sampler_index` with a sampler name).
ALIASES: Mapping[str, str] = MappingProxyType({"sampler_index": "sampler_name"})
# Fields where a negative value means "off" (A1111 sends -1 for an unset "resize seed from").
NEGATIVE_MEANS_OFF = frozenset({"seed_resize_from_w", "seed_resize_from_h"})


def _as_int(value: Any) -> int:
    return int(float(value))  # Gradio sliders and numbers give floats


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


def _converter(default: Any) -> Callable[[Any], Any]:
    """How a field's value is converted: by the type of its default (the table is the schema too)."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return _as_int
    if isinstance(default, float):
        return float
    if isinstance(default, tuple):
        return _as_tuple
    if isinstance(default, str):
        return str
    return lambda value: value  # images, masks, optional names: as given


def _value(name: str, fields: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    value = fields.get(name)
    if value is None or (name in EMPTY_MEANS_DEFAULT and not value):
        return defaults[name]
    converted = _converter(defaults[name])(value)
    if name in NEGATIVE_MEANS_OFF and converted < 0:
        return 0
    return converted


def _with_aliases(fields: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(fields)
    for alias, name in ALIASES.items():
        if not merged.get(name) and merged.get(alias):
            merged[name] = merged[alias]
    return merged


def build_img2img_inputs(fields: Mapping[str, Any]) -> Img2ImgInputs:
    """The image side from A1111's img2img names (`init_images`, `mask`, `resize_mode`, `mask_blur`,
    `inpainting_fill`, `inpaint_full_res`, `inpaint_full_res_padding`, `inpainting_mask_invert`)."""
    values = {name: _value(name, fields, IMG2IMG_DEFAULTS) for name in IMG2IMG_DEFAULTS}
    values["init_images"] = tuple(fields.get("init_images") or ())
    return Img2ImgInputs(**values)


def build_request(fields: Mapping[str, Any], defaults: GenerationRequest | None = None) -> GenerationRequest:
    """The request for `fields` (A1111 names; a missing or null value takes the default).

    `defaults` replaces table values that depend on the server's options (the clip skip setting); fields the
    table does not know are ignored, as A1111 ignores them. With `init_images` present the request is img2img.
    """
    table = dict(REQUEST_DEFAULTS)
    if defaults is not None:
        table.update({name: getattr(defaults, name) for name in REQUEST_DEFAULTS})
    merged = _with_aliases(fields)
    values = {name: _value(name, merged, table) for name in table if name != "img2img"}
    if merged.get("init_images") is not None:
        values["img2img"] = build_img2img_inputs(merged)
    return GenerationRequest(**values)
