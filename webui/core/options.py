"""Runtime options, persisted in A1111's `config.json` format.

Why keep unknown keys: users point us at their A1111 data dir; keys we do not use yet must survive a save.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webui.core.errors import ValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptionSpec:
    key: str
    default: Any
    label: str
    choices: tuple[Any, ...] | None = None


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("sd_model_checkpoint", None, "Stable Diffusion checkpoint"),
    OptionSpec("sd_vae", "Automatic", "SD VAE"),
    OptionSpec("CLIP_stop_at_last_layers", 1, "Clip skip"),
    OptionSpec("samples_save", True, "Always save all generated images"),
    OptionSpec("samples_format", "png", "File format for images", ("png", "jpg", "webp")),
    OptionSpec("quicksettings_list", ["sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"],
               "Quicksettings list"),
)
_SPECS = {spec.key: spec for spec in OPTION_SPECS}


class Options:
    """A dict of options with defaults, validated on set, saved atomically (temp file + rename)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        if path is not None and path.is_file():
            try:
                self._values = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("Could not read %s (%s); starting from defaults.", path, exc)

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
        spec = _SPECS.get(key)
        return spec.default if spec else None

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            merged = {spec.key: spec.default for spec in OPTION_SPECS}
            merged.update(self._values)
            return merged

    def update(self, values: dict[str, Any], save: bool = True) -> None:
        for key, value in values.items():
            spec = _SPECS.get(key)
            if spec is not None and spec.choices is not None and value not in spec.choices:
                raise ValidationError(f"Option {key} must be one of {', '.join(map(str, spec.choices))}.")
        with self._lock:
            self._values.update(values)
        if save:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            text = json.dumps(self._values, indent=4, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.path)
