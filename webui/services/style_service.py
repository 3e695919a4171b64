"""Prompt styles (styles.csv): list, apply to the prompt boxes, save and delete.

Why a service: the tabs and the API share one store. Styles selected for a generation are merged when its request
is resolved (`webui.core.resolve`), from the rows this service lists.
"""
from __future__ import annotations

from webui.core.styles import Style, StyleStore, apply_styles


class StyleService:
    """The style store as the tabs and the generation service use it; the file is re-read before listing."""

    def __init__(self, store: StyleStore):
        self._store = store

    def style_names(self) -> list[str]:
        self._store.load()
        return self._store.names()

    def style_rows(self) -> list[Style]:
        self._store.load()
        return self._store.styles()

    def apply_styles_to_prompt(self, prompt: str, negative: str, names: list[str]) -> tuple[str, str]:
        """A1111's "apply styles" button: the styles' text merged into the prompt boxes."""
        chosen = [style for name in names if (style := self._store.get(name)) is not None]
        return apply_styles(prompt, negative, chosen)

    def save_style(self, name: str, prompt: str, negative: str) -> list[str]:
        self._store.save_style(Style(name.strip(), prompt, negative))
        return self._store.names()

    def delete_style(self, name: str) -> list[str]:
        self._store.delete(name)
        return self._store.names()
