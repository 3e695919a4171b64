"""Textual-inversion embeddings from `embeddings/`: A1111 `.pt` (`string_to_param`), `.safetensors`
(`emb_params`), SDXL files (`clip_l` + `clip_g`) and diffusers-style `{token: vector}` files.

Why our own reader: diffusers' `load_textual_inversion` does not read SDXL `clip_l`/`clip_g` files, and it
edits the tokenizer. Here an embedding is used by writing its file name in the prompt; the encoder swaps the
name for the vectors (see `prompt_encoding`), and nothing else about the model changes.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from webui.core.errors import ModelLoadError
from webui.engine.models.state_dict import load_state_dict

log = logging.getLogger(__name__)

EXTENSIONS = (".pt", ".safetensors", ".bin")
SDXL_KEYS = ("clip_l", "clip_g")


@dataclass(frozen=True)
class Embedding:
    """Vectors per text encoder: {"default": [n, dim]} for SD1/SD2, {"clip_l", "clip_g"} for SDXL."""

    name: str
    path: Path
    vectors: dict[str, torch.Tensor]
    mtime_ns: int

    @property
    def token_count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def dims(self) -> tuple[int, ...]:
        return tuple(v.shape[-1] for v in self.vectors.values())

    def vectors_for(self, encoder_dims: tuple[int, ...]) -> list[torch.Tensor] | None:
        """Vectors per text encoder of a model with these hidden sizes, or None when it does not fit."""
        if len(encoder_dims) == 2 and all(k in self.vectors for k in SDXL_KEYS):
            pair = [self.vectors["clip_l"], self.vectors["clip_g"]]
            return pair if tuple(v.shape[-1] for v in pair) == encoder_dims else None
        if len(encoder_dims) == 1 and "default" in self.vectors:
            vec = self.vectors["default"]
            return [vec] if vec.shape[-1] == encoder_dims[0] else None
        return None


def _as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().to(torch.float32)
    return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


def read_embedding(path: Path) -> dict[str, torch.Tensor]:
    """The vectors of one embedding file; `ModelLoadError` when the file is not an embedding."""
    if path.suffix == ".safetensors":
        try:
            data: dict = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - any reader failure means the same thing to the user
            raise ModelLoadError(f"Embedding '{path.name}' could not be read: {exc}") from exc
    else:
        data = load_state_dict(path)
    if all(k in data for k in SDXL_KEYS):
        return {k: _as_matrix(data[k]) for k in SDXL_KEYS}
    if "string_to_param" in data:
        params = data["string_to_param"]
        return {"default": _as_matrix(next(iter(params.values())))}
    if "emb_params" in data:
        return {"default": _as_matrix(data["emb_params"])}
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    if len(tensors) == 1 and tensors[0].dim() in (1, 2):
        return {"default": _as_matrix(tensors[0])}
    raise ModelLoadError(f"'{path.name}' is not a textual-inversion embedding (no string_to_param, emb_params "
                         f"or clip_l/clip_g).")


class EmbeddingLibrary:
    """The embeddings folder, rescanned on every use (a stat per file) so new files work without restart."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._cache: dict[Path, Embedding] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, Embedding]:
        found: dict[str, Embedding] = {}
        errors: dict[str, str] = {}
        paths = sorted(p for p in self.folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS) \
            if self.folder.is_dir() else []
        with self._lock:
            for path in paths:
                mtime = path.stat().st_mtime_ns
                cached = self._cache.get(path)
                if cached is None or cached.mtime_ns != mtime:
                    try:
                        cached = Embedding(path.stem, path, read_embedding(path), mtime)
                    except ModelLoadError as exc:
                        errors[path.stem] = str(exc)
                        continue
                    self._cache[path] = cached
                found.setdefault(cached.name, cached)
            self._errors = errors
        return found

    def errors(self) -> dict[str, str]:
        with self._lock:
            return dict(self._errors)
