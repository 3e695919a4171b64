"""The Extra Networks panel's cards: the files of one tab (checkpoints, embeddings, LoRAs), filtered and sorted,
with their previews, sidecars and metadata.

Why here and not in the services: listing is file-system work, and it must be fast. Listing only stats files:
previews and sidecars come from one directory listing per folder (`CompanionFinder`), and folder labels are
cached, so thousands of files list in a fraction of a second. The UI and any API route list the same way.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from webui.core.errors import ModelLoadError, ModelNotFoundError, ValidationError
from webui.engine.models.registry import ModelRegistry
from webui.engine.models.safetensors_header import read_safetensors_header
from webui.engine.models.sidecars import CompanionFinder, read_sidecar, tag_frequency, training_summary
from webui.engine.networks.adapter_family import family_label, fits_family
from webui.engine.networks.embeddings import EmbeddingLibrary
from webui.engine.networks.lora_library import LoraLibrary

# The libraries the panel's tabs list, and the sort orders it offers.
EXTRA_NETWORK_KINDS: tuple[str, ...] = ("checkpoints", "textual_inversion", "lora")
EXTRA_NETWORK_SORTS: tuple[str, ...] = ("name", "date", "size")
KIND_LABELS = {"checkpoints": "checkpoint", "textual_inversion": "embedding", "lora": "LoRA"}

_ORDERS: dict[str, Callable[[dict[str, Any]], tuple]] = {
    "name": lambda card: (card["name"].casefold(), card["key"]),
    "date": lambda card: (card["mtime_ns"], card["name"].casefold()),
    "size": lambda card: (card["size"], card["name"].casefold()),
}


@dataclass(frozen=True)
class NetworkFile:
    """One file of an Extra Networks tab. `key` is what a click acts on (checkpoint title, embedding or LoRA name);
    `folder` is its folder label, e.g. "Lora/styles", which the folder filter matches by prefix."""

    key: str
    name: str
    path: Path
    folder: str
    size: int
    mtime_ns: int


@functools.lru_cache(maxsize=4096)
def folder_label(roots: tuple[Path, ...], folder: Path) -> str:
    """The label `<root folder name>/<sub-folders>` of a folder under one of `roots`, else the folder's name.
    Cached: thousands of files share a few folders, and path arithmetic is most of a listing's cost."""
    for root in roots:
        if folder.is_relative_to(root):
            relative = folder.relative_to(root).as_posix()
            return root.name if relative == "." else f"{root.name}/{relative}"
    return folder.name


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # removed since the library scanned it
        return 0


@dataclass(frozen=True)
class NetworkCatalog:
    """The files of the three libraries as Extra Networks cards. `checkpoint_dirs` label checkpoint folders."""

    registry: ModelRegistry
    checkpoint_dirs: tuple[Path, ...]
    loras: LoraLibrary
    embeddings: EmbeddingLibrary

    def files(self, kind: str, refresh: bool) -> list[NetworkFile]:
        """The files of one tab (a rescan first when `refresh`; embeddings rescan on every use anyway)."""
        if kind == "lora":
            if refresh:
                self.loras.refresh()
            return [NetworkFile(e.name, e.name, e.path, folder_label(self.loras.folders, e.path.parent), e.size,
                                e.mtime_ns) for e in self.loras.entries()]
        if kind == "textual_inversion":
            root = (self.embeddings.folder,)
            return [NetworkFile(name, name, emb.path, folder_label(root, emb.path.parent), _file_size(emb.path),
                                emb.mtime_ns) for name, emb in self.embeddings.refresh().items()]
        if kind == "checkpoints":
            if refresh:
                self.registry.refresh()
            roots = self.checkpoint_dirs
            return [NetworkFile(e.title, e.name, e.path, folder_label(roots, e.path.parent), e.size, e.mtime_ns)
                    for e in self.registry.checkpoints()]
        raise ValidationError(f"Unknown extra network kind '{kind}'. Use one of: {', '.join(EXTRA_NETWORK_KINDS)}.")

    def file(self, kind: str, key: str) -> NetworkFile:
        for item in self.files(kind, refresh=False):
            if item.key == key:
                return item
        raise ModelNotFoundError(f"No {KIND_LABELS[kind]} named '{key}'. Press refresh in the Extra Networks "
                                 f"panel to rescan the folders.")

    def fits(self, kind: str, item: NetworkFile, model_family: str | None) -> bool:
        """Whether a LoRA card fits a model of `model_family` (files of unknown family always do; other kinds
        are not filtered)."""
        if kind != "lora" or model_family is None:
            return True
        entry = self.loras.find(item.key)
        return entry is None or fits_family(self.loras.family(entry), model_family)

    def cards(self, kind: str, search: str = "", sort: str = "name", descending: bool = False, folder: str = "",
              refresh: bool = False, active: str | None = None,
              model_family: str | None = None) -> list[dict[str, Any]]:
        """The cards of one tab, filtered and sorted. `search` matches every word against name, folder,
        description and activation text; `folder` matches a folder label and its sub-folders; `refresh` rescans
        the disk first; the card whose key is `active` (the loaded checkpoint) is marked; with `model_family`,
        LoRAs made for another family are left out (SD LoRAs for AuraFlow, Flux LoRAs for SD, ...)."""
        if sort not in EXTRA_NETWORK_SORTS:
            raise ValidationError(f"Unknown sort '{sort}'. Use one of: {', '.join(EXTRA_NETWORK_SORTS)}.")
        finder = CompanionFinder()
        terms = search.casefold().split()
        cards = []
        for item in self.files(kind, refresh):
            if folder and item.folder != folder and not item.folder.startswith(folder + "/"):
                continue
            if not self.fits(kind, item, model_family):
                continue
            sidecar = finder.sidecar(item.path)
            description = str(sidecar.get("description") or "")
            haystack = f"{item.key} {item.folder} {description} {sidecar.get('activation text') or ''}".casefold()
            if not all(term in haystack for term in terms):
                continue
            preview = finder.preview(item.path)
            cards.append({"key": item.key, "name": item.name, "folder": item.folder, "path": str(item.path),
                          "size": item.size, "mtime_ns": item.mtime_ns, "description": description,
                          "preview": str(preview) if preview else None, "active": item.key == active})
        return sorted(cards, key=_ORDERS[sort], reverse=descending)

    def folders(self, kind: str) -> list[str]:
        """Every folder label of a tab with its parents ("Lora", "Lora/styles", ...), for the folder filter."""
        labels: set[str] = set()
        for item in self.files(kind, refresh=False):
            parts = item.folder.split("/")
            labels.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
        return sorted(labels, key=str.casefold)

    def details(self, kind: str, key: str) -> dict[str, Any]:
        """A card's metadata view: the file, its sidecar, the kohya `ss_*` training summary and tag frequency
        (from the safetensors header only), and all raw metadata."""
        item = self.file(kind, key)
        modified = datetime.fromtimestamp(item.mtime_ns / 1e9).isoformat(" ", "seconds")
        info: list[tuple[str, str]] = [("File", str(item.path)), ("Size", f"{item.size:,} bytes"),
                                       ("Modified", modified)]
        metadata: dict[str, str] = {}
        if item.path.suffix == ".safetensors":
            try:
                metadata, _ = read_safetensors_header(item.path)
            except ModelLoadError as exc:
                info.append(("Metadata", str(exc)))
        if kind == "textual_inversion" and (emb := self.embeddings.refresh().get(key)) is not None:
            info.append(("Vectors", f"{emb.token_count} (width {'/'.join(str(d) for d in emb.dims())})"))
        if kind == "lora" and (entry := self.loras.find(key)) is not None:
            info.append(("Made for", family_label(self.loras.family(entry))))
        return {"key": item.key, "name": item.name, "kind": kind, "folder": item.folder, "info": info,
                "sidecar": read_sidecar(item.path), "training": training_summary(metadata),
                "tags": tag_frequency(metadata), "metadata": metadata}
