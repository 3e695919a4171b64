"""Infotext and PNG info: parse an infotext for "send to" and paste, read a PNG's parameters, find the checkpoint
an infotext names; and the sampler and schedule tables.

Why a service: the paste button, PNG Info and the API's /png-info read infotexts the same way, and naming a
checkpoint by hash must never hash files (that would read gigabytes to fill a form).
"""
from __future__ import annotations

from typing import Any

from webui.core.errors import ModelNotFoundError
from webui.core.infotext import parse_infotext
from webui.core.infotext_params import parse_generation_parameters
from webui.core.samplers import SAMPLERS, SCHEDULE_TYPES
from webui.engine.models.hashing import HashCache
from webui.engine.models.registry import ModelRegistry
from webui.engine.output.png import read_infotext

# Infotext keys -> the always-present generation fields they fill (see `InfoService.infotext_fields`).
_CORE_INFOTEXT_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Steps", ("steps",)), ("Sampler", ("sampler_name",)), ("CFG scale", ("cfg_scale",)), ("Seed", ("seed",)),
    ("Size", ("width", "height")),
)


class InfoService:
    """Infotexts, PNG info and the tables the forms offer."""

    def __init__(self, registry: ModelRegistry, hashes: HashCache):
        self._registry = registry
        self._hashes = hashes

    @staticmethod
    def parse_infotext(text: str) -> dict[str, Any]:
        """Infotext -> generation fields (A1111 API names), for "send to" and the paste button."""
        return parse_infotext(text).to_generation_fields()

    @staticmethod
    def infotext_fields(text: str) -> dict[str, Any]:
        """Like `parse_infotext`, but only the fields the text names (plus A1111's implied defaults for clip
        skip and schedule type), so that pasting a partial infotext leaves the other UI fields alone."""
        parsed = parse_infotext(text)
        if not parsed.params:
            return {"prompt": parsed.prompt, "negative_prompt": parsed.negative_prompt}
        fields = parsed.to_generation_fields()
        for key, names in _CORE_INFOTEXT_KEYS:
            if key not in parsed.params:
                for name in names:
                    fields.pop(name, None)
        return fields

    def find_checkpoint_title(self, name: str | None, model_hash: str | None) -> str | None:
        """The listed checkpoint an infotext's `Model hash` / `Model` names: by a hash already known (exact file),
        else by name. Files are never hashed here: that would read gigabytes to fill a form."""
        wanted = (model_hash or "").strip().lower()
        if wanted:
            for entry in self._registry.checkpoints():
                known = self._hashes.cached_model_hash(entry.path) if entry.kind != "diffusers" else None
                if known and known.lower() == wanted:
                    return entry.title
        if name:
            try:
                return self._registry.find_checkpoint(name).title
            except ModelNotFoundError:
                return None
        return None

    @staticmethod
    def png_info(image: Any) -> dict[str, Any]:
        """A1111's PNG Info: the infotext (PNG chunk or EXIF UserComment), other text items, and `parameters`:
        the infotext as A1111's parameter dict (infotext labels, A1111's value types and defaults)."""
        infotext = read_infotext(image) or ""
        items = {k: v for k, v in getattr(image, "info", {}).items() if isinstance(v, str) and k != "parameters"}
        return {"info": infotext, "items": items, "parameters": parse_generation_parameters(infotext)}

    @staticmethod
    def samplers() -> list[dict[str, Any]]:
        return [{"name": s.name, "aliases": list(s.aliases), "options": {"scheduler": s.scheduler_class}}
                for s in SAMPLERS]

    @staticmethod
    def sampler_names() -> list[str]:
        return [s.name for s in SAMPLERS]

    @staticmethod
    def schedule_types() -> list[str]:
        return list(SCHEDULE_TYPES)
