"""The ControlNet (and T2I-Adapter) files in `models/ControlNet` and the loaded ones kept in RAM.

Why a cache with a byte budget: a job with three units loads three ControlNets (about 1.4 GB each for SD1, 2.5 GB
for SDXL); the next job usually uses the same ones. They stay loaded, least recently used dropped first, within
the same byte budget the checkpoint cache uses (`sd_checkpoints_cache_bytes`, default half the RAM), counted
apart from the checkpoints.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from webui.core.control import NO_MODEL
from webui.core.errors import ModelLoadError, ModelNotFoundError
from webui.engine.control.control_lora import ControlBase, load_control_lora
from webui.engine.control.loading import (
    ADAPTER_FOLDER,
    ADAPTER_LAYOUTS,
    CONTROL_LORA,
    ControlNetFacts,
    load_controlnet,
    read_facts,
    read_state,
    short_hash,
)
from webui.engine.control.t2i_adapter import build_adapter, load_adapter_folder

log = logging.getLogger(__name__)

CONTROLNET_EXTENSIONS = (".safetensors", ".pth", ".ckpt", ".pt")
SKIPPED_FOLDERS = ("annotators",)


@dataclass(frozen=True)
class ControlNetEntry:
    """One ControlNet on disk; `title` is the extension's "name [hash]"."""

    name: str
    path: Path
    mtime_ns: int
    hash: str

    @property
    def title(self) -> str:
        return f"{self.name} [{self.hash}]"


def _is_controlnet_folder(folder: Path) -> bool:
    """A diffusers folder of a ControlNet or a T2I-Adapter."""
    config = folder / "config.json"
    try:
        return config.is_file() and any(f'"{name}"' in config.read_text(encoding="utf-8")
                                        for name in ("ControlNetModel", "T2IAdapter"))
    except OSError:
        return False


def scan_controlnets(root: Path) -> list[ControlNetEntry]:
    """Files and diffusers folders under `root` (the annotator weights folder excluded), sorted by name."""
    entries: list[ControlNetEntry] = []
    if not root.is_dir():
        return entries
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        folder = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and
                             not (folder == root and d in SKIPPED_FOLDERS))
        if folder != root and _is_controlnet_folder(folder):
            entries.append(_entry(folder, folder.name))
            dirnames[:] = []
            continue
        for filename in sorted(filenames):
            if filename.lower().endswith(CONTROLNET_EXTENSIONS) and not filename.startswith("."):
                path = folder / filename
                try:
                    entries.append(_entry(path, path.stem))
                except (OSError, ModelLoadError) as exc:
                    log.warning("Skipping ControlNet %s: %s", path, exc)
    return sorted(entries, key=lambda e: e.name.lower())


def _entry(path: Path, name: str) -> ControlNetEntry:
    try:
        digest = short_hash(path)
    except OSError as exc:
        raise ModelLoadError(f"'{path.name}' could not be read: {exc}") from exc
    return ControlNetEntry(name, path, path.stat().st_mtime_ns, digest)


def model_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


class ControlNetLibrary:
    """Lists `models/ControlNet` (rescanned on `refresh`) and loads ControlNets through a byte-budgeted cache.
    Loading happens on the executor's worker only; listing may happen on any thread (the list is replaced, never
    mutated)."""

    def __init__(self, root: Path, budget: Callable[[], int]):
        self.root = root
        self._budget = budget
        self._entries: list[ControlNetEntry] = []
        self._facts: dict[tuple[str, int], ControlNetFacts] = {}
        self._loaded: OrderedDict[tuple[str, int, str, str], torch.nn.Module] = OrderedDict()
        self.load_count = 0
        self.refresh()

    def refresh(self) -> list[ControlNetEntry]:
        self._entries = scan_controlnets(self.root)
        return list(self._entries)

    def entries(self) -> list[ControlNetEntry]:
        return list(self._entries)

    def titles(self) -> list[str]:
        return [entry.title for entry in self._entries]

    def find(self, name: str) -> ControlNetEntry:
        """By title ("name [hash]"), name, file name or title with another hash; case-insensitive last."""
        wanted = name.strip()
        bare = wanted[: wanted.rindex(" [")] if wanted.endswith("]") and " [" in wanted else wanted
        for entries in (self._entries, self.refresh()):
            for matches in (lambda e: e.title == wanted, lambda e: e.name == bare or e.path.name == bare,
                            lambda e: e.name.lower() == bare.lower()):
                for entry in entries:
                    if matches(entry):
                        return entry
        raise ModelNotFoundError(f"No ControlNet model named '{name}'. Put the file in {self.root} and press the "
                                 "refresh button next to the model list.")

    def facts(self, entry: ControlNetEntry) -> ControlNetFacts:
        """What the file says (layout, family), read once per file version (a `.pth` is read whole)."""
        key = (str(entry.path), entry.mtime_ns)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = read_facts(entry.path)
        return facts

    def load(self, entry: ControlNetEntry, base: ControlBase, dtype: torch.dtype,
             keep: tuple[ControlNetEntry, ...] = ()) -> torch.nn.Module:
        """The loaded model (from the cache when there), then drop least recently used ones over the budget,
        never one in `keep` (the units of the running job). A ControlNet-LoRA is built on the checkpoint's UNet,
        so its cache entry belongs to that checkpoint."""
        key = self._key(entry, dtype, base)
        model = self._loaded.pop(key, None)
        if model is None:
            log.info("Loading ControlNet %s", entry.path)
            layout = self.facts(entry).layout
            if layout == CONTROL_LORA:
                model = load_control_lora(entry.path, base, dtype)
            elif layout == ADAPTER_FOLDER:
                model = load_adapter_folder(entry.path, dtype)
            elif layout in ADAPTER_LAYOUTS:
                model = build_adapter(read_state(entry.path), layout, base.config, base.vae_scale_factor,
                                      entry.path.name, dtype)
            else:
                model = load_controlnet(entry.path, base.config, dtype)
            self.load_count += 1
        self._loaded[key] = model
        self._evict({self._key(e, dtype, base) for e in (*keep, entry)})
        return model

    def _key(self, entry: ControlNetEntry, dtype: torch.dtype, base: ControlBase) -> tuple[str, int, str, str]:
        own = self.facts(entry).layout == CONTROL_LORA  # built on the checkpoint's UNet: one per checkpoint
        return (str(entry.path), entry.mtime_ns, str(dtype), base.checkpoint if own else "")

    def _evict(self, keep: set[tuple[str, int, str, str]]) -> None:
        budget = self._budget()
        while budget and sum(model_bytes(m) for m in self._loaded.values()) > budget:
            victim = next((key for key in self._loaded if key not in keep), None)
            if victim is None:
                break
            del self._loaded[victim]

    def cached(self) -> list[str]:
        return [Path(key[0]).name for key in self._loaded]

    def title_of(self, path: Path) -> str:
        entry = next((e for e in self._entries if e.path == path), None)
        return entry.title if entry else path.stem

    def model_list(self) -> list[str]:
        """`/controlnet/model_list`: titles, rescanned (the extension lists what is on disk now)."""
        return [entry.title for entry in self.refresh()]

    @staticmethod
    def is_none(name: str | None) -> bool:
        return not name or name.strip() in ("", NO_MODEL, "none")
