"""The model registry: what checkpoint and VAE files exist in the A1111 folders.

Why header-only: users keep libraries of hundreds of multi-GB files; listing must only stat them. The family
(SD1/SD2/SDXL) is read from the safetensors header on demand and cached by (size, mtime).
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from webui.core.errors import ModelNotFoundError

log = logging.getLogger(__name__)

CHECKPOINT_EXTENSIONS = (".safetensors", ".ckpt")
VAE_EXTENSIONS = (".safetensors", ".ckpt", ".pt")


@dataclass(frozen=True)
class ModelEntry:
    """One model on disk. `title` is what the UI lists and what options/API name it by."""

    title: str
    name: str
    path: Path
    kind: str
    size: int
    mtime_ns: int
    builtin: bool = False

    @property
    def model_name(self) -> str:
        """A1111's `model_name`: the title's stem with folder separators flattened."""
        stem = self.title.rsplit(".", 1)[0] if self.kind != "diffusers" else self.title
        return stem.replace("/", "_").replace("\\", "_")


def _entry(root: Path, path: Path, kind: str) -> ModelEntry:
    stat = path.stat()
    size = stat.st_size if path.is_file() else 0
    name = path.stem if path.is_file() else path.name
    return ModelEntry(path.relative_to(root).as_posix(), name, path, kind, size, stat.st_mtime_ns)


def _scan_folder(root: Path, extensions: tuple[str, ...], kind: str, allow_diffusers: bool) -> list[ModelEntry]:
    """Files with the given extensions under `root`; a diffusers folder (has model_index.json) is one entry
    and is not descended into (its component weights are not checkpoints)."""
    entries: list[ModelEntry] = []
    if not root.is_dir():
        return entries
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        folder = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if allow_diffusers and folder != root and "model_index.json" in filenames:
            entries.append(_entry(root, folder, "diffusers"))
            dirnames[:] = []
            continue
        for filename in sorted(filenames):
            path = folder / filename
            lower = filename.lower()
            if lower.startswith(".") or not lower.endswith(extensions):
                continue
            if kind == "checkpoint" and lower.endswith((".vae.safetensors", ".vae.ckpt", ".vae.pt")):
                continue
            try:
                entries.append(_entry(root, path, kind))
            except OSError as exc:  # a broken symlink or a file removed while scanning
                log.warning("Skipping %s: %s", path, exc)
    return sorted(entries, key=lambda e: e.title.lower())


class ModelRegistry:
    """Lists checkpoints (files and diffusers folders) and VAEs; `refresh` rescans."""

    def __init__(self, ckpt_dirs: tuple[Path, ...], vae_dir: Path, builtin: tuple[Path, ...] = ()):
        self._ckpt_dirs = ckpt_dirs
        self._vae_dir = vae_dir
        self._builtin = builtin
        self._external: list[Path] = []
        self._lock = threading.Lock()
        self._checkpoints: list[ModelEntry] = []
        self._vaes: list[ModelEntry] = []
        self.refresh()

    def refresh(self) -> None:
        checkpoints: list[ModelEntry] = []
        seen: set[str] = set()
        for folder in self._ckpt_dirs:
            for entry in _scan_folder(folder, CHECKPOINT_EXTENSIONS, "checkpoint", allow_diffusers=True):
                if entry.title not in seen:
                    seen.add(entry.title)
                    checkpoints.append(entry)
        for path in (*self._external, *self._builtin):
            if path.is_file() and path.name not in seen:
                seen.add(path.name)
                stat = path.stat()
                checkpoints.append(ModelEntry(path.name, path.stem, path, "checkpoint", stat.st_size,
                                              stat.st_mtime_ns, builtin=path in self._builtin))
        vaes = _scan_folder(self._vae_dir, VAE_EXTENSIONS, "vae", allow_diffusers=False)
        with self._lock:
            self._checkpoints = checkpoints
            self._vaes = vaes

    def add_external_checkpoint(self, path: Path) -> None:
        """A checkpoint outside the folders (A1111's --ckpt): listed by its file name."""
        self._external.append(path.resolve())
        self.refresh()

    def checkpoints(self) -> list[ModelEntry]:
        with self._lock:
            return list(self._checkpoints)

    def vaes(self) -> list[ModelEntry]:
        with self._lock:
            return list(self._vaes)

    def find_checkpoint(self, name: str) -> ModelEntry:
        """Match A1111-style: exact title, title with a ' [hash]' suffix, file name, stem, or a path."""
        return self._find(name, self.checkpoints(), "checkpoint", "models/Stable-diffusion")

    def find_vae(self, name: str) -> ModelEntry:
        return self._find(name, self.vaes(), "VAE", "models/VAE")

    @staticmethod
    def _find(name: str, entries: list[ModelEntry], what: str, folder: str) -> ModelEntry:
        wanted = name.strip()
        if wanted.endswith("]") and " [" in wanted:
            wanted = wanted[: wanted.rindex(" [")]
        for matcher in (
            lambda e: e.title == wanted,
            lambda e: e.path.name == wanted or e.model_name == wanted or e.name == wanted,
            lambda e: str(e.path) == wanted,
            lambda e: e.title.lower() == wanted.lower() or e.name.lower() == wanted.lower(),
        ):
            for entry in entries:
                if matcher(entry):
                    return entry
        raise ModelNotFoundError(
            f"No {what} named '{name}'. Put the file in {folder}/ and press the refresh button."
        )

    def vae_for_checkpoint(self, checkpoint: ModelEntry) -> ModelEntry | None:
        """A1111's "Automatic" VAE: `<name>.vae.safetensors` (or .vae.pt) next to the checkpoint, or a file with
        the checkpoint's name in models/VAE."""
        for suffix in (".vae.safetensors", ".vae.pt", ".vae.ckpt"):
            sidecar = checkpoint.path.with_name(checkpoint.path.stem + suffix)
            if sidecar.is_file():
                stat = sidecar.stat()
                return ModelEntry(sidecar.name, sidecar.stem, sidecar, "vae", stat.st_size, stat.st_mtime_ns)
        for entry in self.vaes():
            if entry.name.split(".")[0] == checkpoint.name:
                return entry
        return None
