"""Latents and text embeddings, computed once per (file or caption, model) and kept on disk across runs.

Why per item and keyed by content: the VAE and frozen text encoder give the same output for the same input and
model every epoch and every run, so the second run of a dataset skips them. A key holds the model identity (a
hash of the checkpoint), the image file's path, size and mtime (an edited image gets new latents) and the bucket.
Items are always encoded one at a time, cached or not, so caching never changes a single bit of training.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import safetensors.torch
import torch

from webui.training.dataset import ImageItem, load_image
from webui.training.families import TextConditioning


def file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


class _DiskStore:
    """Small safetensors files under `root/<model>/<key[:2]>/<key>.safetensors`, written atomically."""

    def __init__(self, root: Path | None):
        self.root = root

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.safetensors"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        if self.root is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return safetensors.torch.load_file(str(path))
        except (OSError, safetensors.SafetensorError):
            return None  # a damaged cache entry is recomputed

    def save(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        safetensors.torch.save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(temp))
        os.replace(temp, path)


class LatentCache:
    """VAE latents per image (the distribution's mean, scaled): memory first, then disk, then the VAE."""

    def __init__(self, vae, model_id: str, root: Path | None, device: torch.device):
        self.vae = vae
        self.model_id = model_id
        self.device = device
        self.store = _DiskStore(root / model_id[:16] if root is not None else None)
        self.memory: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def key(self, item: ImageItem) -> str:
        return _digest("latents", self.model_id, file_identity(item.path), f"{item.bucket}")

    @torch.no_grad()
    def encode(self, item: ImageItem) -> torch.Tensor:
        pixels = load_image(item.path, item.bucket).unsqueeze(0).to(self.device, self.vae.dtype)
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0  # None for the SD/SDXL VAEs
        latents = (self.vae.encode(pixels).latent_dist.mean - shift) * self.vae.config.scaling_factor
        return latents[0].float().cpu()

    def get(self, item: ImageItem, use_cache: bool) -> torch.Tensor:
        if not use_cache:
            return self.encode(item)
        key = self.key(item)
        cached = self.memory.get(key)
        if cached is None:
            stored = self.store.load(key)
            cached = stored["latents"] if stored is not None else None
            if cached is None:
                self.misses += 1
                cached = self.encode(item)
                self.store.save(key, {"latents": cached})
            else:
                self.hits += 1
            self.memory[key] = cached
        return cached


class TextCache:
    """Frozen text-encoder output per caption (only used while the text encoder is not trained)."""

    def __init__(self, encode: Callable[[list[str]], TextConditioning], model_id: str, root: Path | None):
        self.encode_fn = encode
        self.model_id = model_id
        self.store = _DiskStore(root / model_id[:16] if root is not None else None)
        self.memory: dict[str, TextConditioning] = {}

    @torch.no_grad()
    def get(self, caption: str, use_cache: bool) -> TextConditioning:
        if not use_cache:
            return self._detached(self.encode_fn([caption]))
        key = _digest("text", self.model_id, caption)
        cached = self.memory.get(key)
        if cached is None:
            stored = self.store.load(key)
            if stored is None:
                cached = self._detached(self.encode_fn([caption]))
                self.store.save(key, cached.tensors())
            else:
                cached = TextConditioning.from_tensors(stored)
            self.memory[key] = cached
        return cached

    @staticmethod
    def _detached(cond: TextConditioning) -> TextConditioning:
        pooled = cond.pooled.detach().float().cpu() if cond.pooled is not None else None
        return TextConditioning(cond.hidden.detach().float().cpu(), pooled)
