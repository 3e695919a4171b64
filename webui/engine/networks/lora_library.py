"""The LoRA / LyCORIS files in `models/Lora` and `models/LyCORIS`, found by name as A1111 does.

Why its own listing: `<lora:name:w>` names a file by its stem (any sub-folder); the UI cards, the API and the
prompt all need the same lookup, the kohya `ss_*` metadata (read from the safetensors header only) and the
sidecar `name.json` (activation text, preferred weight).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open

from webui.core.errors import ModelLoadError
from webui.engine.models.safetensors_header import read_safetensors_header
from webui.engine.networks.adapter_family import adapter_family

log = logging.getLogger(__name__)

EXTENSIONS = (".safetensors", ".pt", ".ckpt")


@dataclass(frozen=True)
class LoraEntry:
    name: str
    path: Path
    folder: str
    size: int
    mtime_ns: int

    @property
    def version_key(self) -> str:
        return f"{self.path}:{self.size}:{self.mtime_ns}"

    def metadata(self) -> dict[str, str]:
        """The file's kohya/civitai metadata (`ss_*`), from the header only."""
        if self.path.suffix != ".safetensors":
            return {}
        try:
            meta, _ = read_safetensors_header(self.path)
        except ModelLoadError as exc:
            log.warning("%s", exc)
            return {}
        return dict(meta or {})

    def family(self) -> str | None:
        """The model family group the file is for (`adapter_family.py`), from the safetensors header's tensor names
        and metadata; None when unknown (also for pickled `.pt`/`.ckpt` files, which are not opened to list).
        The header is read by the safetensors library (measured: several times faster than our validating reader
        on a LoRA of 2,000 tensors; nothing here trusts the offsets)."""
        if self.path.suffix != ".safetensors":
            return None
        try:
            with safe_open(str(self.path), "pt") as handle:
                names, metadata = list(handle.keys()), handle.metadata() or {}
        except (OSError, SafetensorError) as exc:
            log.warning("Cannot read the header of %s: %s", self.path, exc)
            return None
        return adapter_family(names, metadata)

    def sidecar(self) -> dict:
        """A1111's `name.json` next to the file (description, activation text, preferred weight, notes)."""
        path = self.path.with_suffix(".json")
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("Ignoring unreadable %s: %s", path, exc)
            return {}


class LoraLibrary:
    def __init__(self, folders: tuple[Path, ...]):
        self.folders = folders
        self._lock = threading.Lock()
        self._entries: dict[str, LoraEntry] = {}
        self._families: dict[str, str | None] = {}  # version_key -> family (headers are read once per version)
        self.refresh()

    def refresh(self) -> None:
        entries: dict[str, LoraEntry] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for filename in sorted(filenames):
                    path = Path(dirpath) / filename
                    if path.suffix.lower() not in EXTENSIONS or filename.startswith("."):
                        continue
                    try:
                        stat = path.stat()
                    except OSError:
                        continue
                    entry = LoraEntry(path.stem, path, folder.name, stat.st_size, stat.st_mtime_ns)
                    entries.setdefault(entry.name, entry)
        with self._lock:
            self._entries = entries

    def entries(self) -> list[LoraEntry]:
        with self._lock:
            return list(self._entries.values())

    def find(self, name: str) -> LoraEntry | None:
        with self._lock:
            return self._entries.get(name)

    def family(self, entry: LoraEntry) -> str | None:
        """`entry.family()`, cached per file version so listing reads each header once."""
        with self._lock:
            if entry.version_key in self._families:
                return self._families[entry.version_key]
        family = entry.family()
        with self._lock:
            self._families[entry.version_key] = family
        return family
