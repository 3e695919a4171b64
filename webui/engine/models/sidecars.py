"""Companion data of a model file: A1111's sidecar `name.json`, the preview image, and a readable summary of the
kohya training metadata stored in a safetensors header.

Why a module of its own: the Extra Networks panel shows and edits these for checkpoints, embeddings and LoRAs
alike. Writing a sidecar must never leave a half-written file (a crash mid-write would lose the user's notes) and
must keep keys other tools wrote; listing thousands of files must not stat five preview names per file, so
companions are found from one directory listing per folder.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from webui.core.errors import ValidationError, WebUIError

log = logging.getLogger(__name__)

# The sidecar keys A1111 reads and writes (docs/FORMATS.md); any other key in a file is kept untouched.
SIDECAR_KEYS = ("description", "sd version", "activation text", "preferred weight", "negative text", "notes")
# Preview file names next to a model, in A1111's order of preference.
PREVIEW_SUFFIXES = (".png", ".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp")

# kohya `ss_*` keys worth showing first, with the label users know them by.
TRAINING_FIELDS: tuple[tuple[str, str], ...] = (
    ("ss_output_name", "Output name"),
    ("ss_base_model_version", "Base model"),
    ("ss_sd_model_name", "Trained on"),
    ("ss_network_module", "Network module"),
    ("ss_network_args", "Network args"),
    ("ss_network_dim", "Dim"),
    ("ss_network_alpha", "Alpha"),
    ("ss_num_epochs", "Epochs"),
    ("ss_epoch", "Epoch saved"),
    ("ss_steps", "Steps"),
    ("ss_resolution", "Resolution"),
    ("ss_num_train_images", "Training images"),
    ("ss_learning_rate", "Learning rate"),
    ("ss_optimizer", "Optimizer"),
    ("ss_clip_skip", "Clip skip"),
    ("sshs_model_hash", "Model hash"),
)


# Extensions of model files; anything else (a diffusers folder such as `model.v1`) keeps its whole name.
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _stem(name: str) -> str:
    base, dot, suffix = name.rpartition(".")
    return base if dot and base and f".{suffix.lower()}" in MODEL_SUFFIXES else name


def model_stem(model_path: Path) -> str:
    """The name companions are keyed by: the file name without its model extension (a diffusers folder: its
    name). Decided from the name alone: listing thousands of files must not stat each one again."""
    return _stem(model_path.name)


def sidecar_path(model_path: Path) -> Path:
    return model_path.parent / f"{model_stem(model_path)}.json"


def read_sidecar(model_path: Path) -> dict[str, Any]:
    """The sidecar's values; {} when there is none or it cannot be read (logged: a broken file must not hide the
    model from the list)."""
    path = sidecar_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("Ignoring unreadable %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("Ignoring %s: not a JSON object", path)
        return {}
    return data


def write_sidecar(model_path: Path, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `updates` into the sidecar and write it atomically (temp file in the same folder, then rename), so a
    crash leaves either the old or the new file. Keys other tools wrote are kept. Returns the written values.

    Refuses to overwrite an existing sidecar that is not a JSON object: saving would silently drop its content.
    """
    path = sidecar_path(model_path)
    existing: dict[str, Any] = {}
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WebUIError(f"{path.name} exists but cannot be read ({exc}); fix or delete it, then save "
                             f"again.") from exc
        if not isinstance(existing, dict):
            raise WebUIError(f"{path.name} does not hold a JSON object; fix or delete it, then save again.")
    values = {**existing, **updates}
    text = json.dumps(values, indent=4, ensure_ascii=False) + "\n"
    temp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False) as handle:
            temp = Path(handle.name)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            temp.unlink(missing_ok=True)
        raise WebUIError(f"Could not save {path}: {exc.strerror or exc}.") from exc
    return values


def preferred_weight(sidecar: Mapping[str, Any], default: float = 1.0) -> float:
    """The sidecar's "preferred weight" when set to a non-zero number (A1111 writes 0 for "not set")."""
    try:
        weight = float(sidecar.get("preferred weight") or 0)
    except (TypeError, ValueError):
        return default
    return weight if weight and math.isfinite(weight) else default


def clean_sidecar_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate editor values before they are written: only A1111's keys, text as text, the weight a number."""
    unknown = sorted(set(values) - set(SIDECAR_KEYS))
    if unknown:
        raise ValidationError(f"Unknown sidecar field(s): {', '.join(unknown)}. Editable: {', '.join(SIDECAR_KEYS)}.")
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if key == "preferred weight":
            try:
                weight = float(value or 0)
            except (TypeError, ValueError) as exc:
                raise ValidationError(f"Preferred weight must be a number (got {value!r}).") from exc
            if not math.isfinite(weight):
                raise ValidationError("Preferred weight must be a finite number.")
            cleaned[key] = weight
        else:
            cleaned[key] = "" if value is None else str(value)
    return cleaned


class CompanionFinder:
    """Previews and sidecars for many model files from one directory listing per folder.

    Why: a library of 2,000 LoRAs would otherwise cost 12,000 `stat` calls per listing (five preview names and a
    sidecar per file); a set lookup in a cached listing costs nothing.
    """

    def __init__(self) -> None:
        self._listings: dict[str, frozenset[str]] = {}

    def _names(self, folder: str) -> frozenset[str]:
        names = self._listings.get(folder)
        if names is None:
            try:
                names = frozenset(os.listdir(folder))
            except OSError:
                names = frozenset()
            self._listings[folder] = names
        return names

    def preview(self, model_path: Path) -> Path | None:
        folder, name = os.path.split(model_path)
        names, stem = self._names(folder), _stem(name)
        for suffix in PREVIEW_SUFFIXES:
            if stem + suffix in names:
                return Path(folder, stem + suffix)
        return None

    def sidecar(self, model_path: Path) -> dict[str, Any]:
        folder, name = os.path.split(model_path)
        if _stem(name) + ".json" not in self._names(folder):
            return {}
        return read_sidecar(model_path)


def training_summary(metadata: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(key, label, value) for the well-known kohya keys present, in a fixed, readable order."""
    return [(key, label, str(metadata[key])) for key, label in TRAINING_FIELDS if metadata.get(key) not in (None, "")]


def tag_frequency(metadata: Mapping[str, str]) -> list[tuple[str, int]]:
    """`ss_tag_frequency` (`{dataset folder: {tag: count}}`, JSON text) summed over folders, most frequent first.
    Unreadable values give [] (logged): metadata is informative, never a reason to fail."""
    raw = metadata.get("ss_tag_frequency")
    if not raw:
        return []
    try:
        folders = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        log.warning("Unreadable ss_tag_frequency: %s", exc)
        return []
    totals: dict[str, int] = {}
    for tags in folders.values() if isinstance(folders, dict) else ():
        for tag, count in tags.items() if isinstance(tags, dict) else ():
            name = str(tag).strip()
            if not name:
                continue
            try:
                totals[name] = totals.get(name, 0) + int(count)
            except (TypeError, ValueError):
                continue
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))
