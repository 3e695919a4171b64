"""Frozen requests <-> JSON, for tasks stored in the queue's database.

Why a codec of its own: a queued task holds its frozen request (a `GenerationRequest` with its img2img images, a
script's options, an Extras request) and must come back identical after a restart. Dataclasses are written with
their class name; only classes the caller lists are rebuilt (a stored row never names code to run). Images are
not JSON: the caller's `save_image` writes each one to a file and returns its name, `load_image` reads it back
(core does not touch PIL).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

TYPE_KEY = "__type__"
TUPLE_KEY = "__tuple__"
IMAGE_KEY = "__image__"


class TaskCodecError(ValueError):
    """A stored request that cannot be rebuilt (unknown class, unknown field, missing image)."""


def _is_image(value: Any) -> bool:
    """PIL images (duck-typed: core does not import PIL)."""
    return hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "save")


def encode_value(value: Any, save_image: Callable[[Any], str]) -> Any:
    """`value` as JSON-able data: dataclasses by class name, tuples marked, images through `save_image`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode_value(getattr(value, f.name), save_image) for f in dataclasses.fields(value)}
        return {TYPE_KEY: type(value).__name__, **fields}
    if isinstance(value, tuple):
        return {TUPLE_KEY: [encode_value(item, save_image) for item in value]}
    if isinstance(value, list):
        return [encode_value(item, save_image) for item in value]
    if isinstance(value, Mapping):
        return {str(key): encode_value(item, save_image) for key, item in value.items()}
    if _is_image(value):
        return {IMAGE_KEY: save_image(value)}
    raise TaskCodecError(f"Cannot store a value of type {type(value).__name__} in a task.")


def decode_value(data: Any, classes: Mapping[str, type], load_image: Callable[[str], Any]) -> Any:
    """The value `encode_value` wrote; dataclasses only of the given `classes` (by name)."""
    if isinstance(data, list):
        return [decode_value(item, classes, load_image) for item in data]
    if not isinstance(data, dict):
        return data
    if TUPLE_KEY in data:
        return tuple(decode_value(item, classes, load_image) for item in data[TUPLE_KEY])
    if IMAGE_KEY in data:
        return load_image(str(data[IMAGE_KEY]))
    if TYPE_KEY in data:
        name = data[TYPE_KEY]
        cls = classes.get(name)
        if cls is None:
            raise TaskCodecError(f"A stored task names an unknown request type '{name}'.")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: decode_value(item, classes, load_image) for key, item in data.items() if key != TYPE_KEY}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TaskCodecError(f"A stored {name} has unknown fields {unknown}.")
        return cls(**values)
    return {key: decode_value(item, classes, load_image) for key, item in data.items()}


def class_table(classes: Iterable[type]) -> dict[str, type]:
    """{name: class} for `decode_value`, refusing two classes of one name (a row must mean one thing)."""
    table: dict[str, type] = {}
    for cls in classes:
        if table.setdefault(cls.__name__, cls) is not cls:
            raise ValueError(f"Two task classes are named {cls.__name__}.")
    return table
