"""The values a request carries for one extension (A1111's `alwayson_scripts["<name>"]`, the extension's controls
under the generation panel, or its declared top-level API fields).

Why in core: the frozen `GenerationRequest` carries them (`extension_args`), and core is the lowest layer;
`webui.extensions.api` re-exports this type as `RequestArgs`, so an extension never imports core itself.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExtensionArgs:
    """One extension's arguments in one request: `args` positional (A1111's `{"args": [...]}` or the values of
    its generation controls, in order), `fields` named (a dict form of `args`, or declared top-level API
    fields), `given` False when the request said nothing for this extension."""

    name: str
    args: tuple[Any, ...] = ()
    fields: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    given: bool = True

    def field(self, key: str, default: Any = None) -> Any:
        """The named field `key`, or `default`."""
        return dict(self.fields).get(key, default)

    @property
    def field_map(self) -> Mapping[str, Any]:
        return dict(self.fields)


def find_args(pairs: tuple[ExtensionArgs, ...], name: str) -> ExtensionArgs:
    """The arguments for extension `name` in `pairs`, or an empty, not-given value."""
    for item in pairs:
        if item.name == name:
            return item
    return ExtensionArgs(name=name, given=False)
