"""Reading `extension.toml` into a `Manifest`.

Why strict here: a manifest with a wrong type (a string where a list is expected) would otherwise fail later, in
the middle of ordering or installing; here it becomes one message naming the file and the field.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from webui.core.errors import ValidationError
from webui.extensions.api import API_VERSION, DEFAULT_ENTRY, MANIFEST_FILE, Manifest

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
ENTRY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LISTS = ("requirements", "before", "after")
_TEXTS = ("version", "description", "url", "entry")


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the extension in `folder`; `ValidationError` when it is missing or wrong. A folder without
    `extension.toml` is an error too: the Extensions tab lists it with the reason instead of hiding it."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ValidationError(f"{folder.name}: no {MANIFEST_FILE} (see docs/extensions.md).")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"{folder.name}/{MANIFEST_FILE} cannot be read: {exc}.") from exc
    table = data.get("extension")
    if not isinstance(table, dict):
        raise ValidationError(f"{folder.name}/{MANIFEST_FILE} has no [extension] table.")
    return manifest_from_table(table, folder.name)


def manifest_from_table(table: dict[str, Any], where: str) -> Manifest:
    """A `Manifest` from the `[extension]` table; `where` names the folder in messages."""
    name = table.get("name", where)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationError(f"{where}: the name must be 1-64 letters, digits, '-', '_' or '.' (got {name!r}).")
    values: dict[str, Any] = {"name": name}
    for key in _TEXTS:
        if key in table:
            if not isinstance(table[key], str):
                raise ValidationError(f"{where}: '{key}' must be a string (got {table[key]!r}).")
            values[key] = table[key]
    for key in _LISTS:
        if key in table:
            items = table[key]
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise ValidationError(f"{where}: '{key}' must be a list of strings (got {items!r}).")
            values[key] = tuple(items)
    entry = values.get("entry", DEFAULT_ENTRY)
    if not ENTRY_PATTERN.match(entry):
        raise ValidationError(f"{where}: 'entry' must be a module name such as 'main' (got {entry!r}).")
    version = table.get("api_version", API_VERSION)
    if not isinstance(version, int) or version > API_VERSION:
        raise ValidationError(f"{where}: written for extension API version {version!r}; this app has "
                              f"version {API_VERSION}.")
    return Manifest(**values, api_version=version)
