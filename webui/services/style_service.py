"""Prompt styles (styles.csv): list, apply to the prompt boxes or to a request, save and delete.

Why a service: styles selected for a generation must be merged into its prompts in one way for the UI, the API
and every script cell, before anything else reads the prompt.
"""
from __future__ import annotations

import dataclasses

from webui.core.errors import ValidationError
from webui.core.requests import GenerationRequest
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

    def apply_request_styles(self, request: GenerationRequest) -> GenerationRequest:
        """Styles selected for a generation are merged into its prompts before anything else sees them; an
        unknown style is an error (a typo must not silently drop a style)."""
        if not request.styles:
            return request
        self._store.load()
        missing = [name for name in request.styles if self._store.get(name) is None]
        if missing:
            raise ValidationError(f"Unknown style(s): {', '.join(missing)}. Styles come from "
                                  f"{self._store.path.name}.")
        prompt, negative = self.apply_styles_to_prompt(request.prompt, request.negative_prompt, list(request.styles))
        return dataclasses.replace(request, prompt=prompt, negative_prompt=negative, styles=())

    def save_style(self, name: str, prompt: str, negative: str) -> list[str]:
        self._store.save_style(Style(name.strip(), prompt, negative))
        return self._store.names()

    def delete_style(self, name: str) -> list[str]:
        self._store.delete(name)
        return self._store.names()
