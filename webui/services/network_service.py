"""Extra networks: LoRA and embedding lists (A1111's API shapes), the LoRA tags of a prompt, and the Extra
Networks panel's cards, sidecars and details.

Why thin: listing and filtering cards is file work in `webui.engine.networks.cards`; this service adds what only
the app knows (the loaded checkpoint, how paths are shown) and keeps the UI and the API listing the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webui.core.prompt_network_tags import LORA_KINDS, ExtraNetworkCall
from webui.engine.generation.prompt_encoding import encoder_dims
from webui.engine.models.sidecars import clean_sidecar_values, preferred_weight, read_sidecar, write_sidecar
from webui.engine.networks.adapters import AdapterRequest
from webui.engine.networks.cards import NetworkCatalog
from webui.engine.networks.embeddings import EmbeddingLibrary
from webui.engine.networks.lora_library import LoraLibrary
from webui.engine.runtime.pipeline_manager import PipelineManager
from webui.services.model_service import ModelService
from webui.services.shown_paths import ShownPaths


class NetworkService:
    """LoRAs, LyCORIS and embeddings as the prompt, the Extra Networks panel and the API see them."""

    def __init__(self, catalog: NetworkCatalog, loras: LoraLibrary, embeddings: EmbeddingLibrary,
                 manager: PipelineManager, models: ModelService, shown: ShownPaths):
        self._catalog = catalog
        self._loras = loras
        self._embeddings = embeddings
        self._manager = manager
        self._models = models
        self._shown = shown

    def resolve_loras(self, calls: Sequence[ExtraNetworkCall]) -> tuple[list[AdapterRequest], list[str]]:
        """`<lora:name:te:unet>` / `<lyco:...>` calls -> files; unknown names become notes, never errors."""
        requests: list[AdapterRequest] = []
        notes: list[str] = []
        self._loras.refresh()
        for call in calls:
            if call.kind not in LORA_KINDS:
                notes.append(f"Extra network type '{call.kind}' is not supported; <{call.kind}:{call.name}> ignored.")
                continue
            entry = self._loras.find(call.name)
            if entry is None:
                notes.append(f"LoRA '{call.name}' not found in models/Lora or models/LyCORIS.")
                continue
            requests.append(AdapterRequest(entry.name, entry.path, entry.version_key, call.te_weight,
                                           call.unet_weight))
        return requests, notes

    def lora_list(self) -> list[dict[str, Any]]:
        """A1111's /sdapi/v1/loras shape."""
        self._loras.refresh()
        return [{"name": e.name, "alias": e.metadata().get("ss_output_name", e.name), "path": self._shown(e.path),
                 "metadata": e.metadata()} for e in self._loras.entries()]

    def embedding_list(self) -> dict[str, Any]:
        """A1111's /sdapi/v1/embeddings shape: loaded (fitting the current model) and skipped ones."""
        library = self._embeddings.refresh()
        active = self._manager.active
        dims = encoder_dims(active.pipeline) if active is not None else None
        loaded, skipped = {}, {}
        for name, emb in library.items():
            row = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": emb.dims()[-1],
                   "vectors": emb.token_count}
            (loaded if dims is None or emb.vectors_for(dims) is not None else skipped)[name] = row
        return {"loaded": loaded, "skipped": skipped}

    def extra_network_cards(self, kind: str, search: str = "", sort: str = "name", descending: bool = False,
                            folder: str = "", refresh: bool = False) -> list[dict[str, Any]]:
        """The cards of one Extra Networks tab, filtered and sorted (see `NetworkCatalog.cards`); the loaded
        checkpoint's card is marked active, and LoRA cards are those made for the loaded model's family (or of
        unknown family)."""
        active = self._models.current_checkpoint() if kind == "checkpoints" else None
        return self._catalog.cards(kind, search, sort, descending, folder, refresh, active, self.loaded_family())

    def loaded_family(self) -> str | None:
        """The loaded checkpoint's family (LoRA cards are listed for it only); None when no model is loaded."""
        active = self._manager.active
        return active.loaded.family if active is not None else None

    def extra_network_folders(self, kind: str) -> list[str]:
        """Every folder label of a tab with its parents ("Lora", "Lora/styles", ...), for the folder filter."""
        return self._catalog.folders(kind)

    def extra_network_sidecar(self, kind: str, key: str) -> dict[str, Any]:
        return read_sidecar(self._catalog.file(kind, key).path)

    def lora_prompt_parts(self, name: str) -> dict[str, str]:
        """What clicking a LoRA card adds: `<lora:name:W>` (W = the sidecar's preferred weight, else 1), the
        activation text for the prompt and the sidecar's negative text."""
        item = self._catalog.file("lora", name)
        sidecar = read_sidecar(item.path)
        return {"tag": f"<lora:{item.key}:{preferred_weight(sidecar):g}>",
                "activation": str(sidecar.get("activation text") or "").strip(),
                "negative": str(sidecar.get("negative text") or "").strip()}

    def extra_network_details(self, kind: str, key: str) -> dict[str, Any]:
        """A card's metadata view (see `NetworkCatalog.details`)."""
        return self._catalog.details(kind, key)

    def save_extra_network_sidecar(self, kind: str, key: str, values: dict[str, Any]) -> dict[str, Any]:
        """Write the editor's fields into `name.json` (atomically; keys other tools wrote are kept)."""
        return write_sidecar(self._catalog.file(kind, key).path, clean_sidecar_values(values))
