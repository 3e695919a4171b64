"""Deleting from the image browser: the file moves to `<outputs>/.trash/<same relative path>`, never a hard delete,
and only files inside the outputs folder can be named.

Why so strict: the delete button takes a path from the browser, so a crafted request could name `../config.json`
or a symlink pointing out of the folder. The path is checked as text (no absolute paths, no `..`, no backslashes,
no hidden parts) and again after resolving symlinks, before anything moves.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from .output_index import IMAGE_SUFFIXES, TRASH_DIR_NAME

SIDECAR_SUFFIXES = (".txt",)


class OutsideOutputsError(ValueError):
    """The path names something outside the outputs folder (or not an image in it)."""


def confined_image(root: Path, rel: str) -> Path:
    """The image file `rel` (relative to `root`) names, refusing anything that could leave `root`."""
    text = (rel or "").strip()
    if not text or "\\" in text or "\x00" in text:
        raise OutsideOutputsError(f"Not a path inside the outputs folder: {rel!r}.")
    pure = PurePosixPath(text)
    if pure.is_absolute() or any(part in ("..", "") or part.startswith(".") for part in pure.parts):
        raise OutsideOutputsError(f"Not a path inside the outputs folder: {rel!r}.")
    base = root.resolve()
    candidate = base.joinpath(*pure.parts)
    resolved = candidate.resolve()
    if candidate.is_symlink() or not resolved.is_relative_to(base):
        raise OutsideOutputsError(f"Not a path inside the outputs folder: {rel!r}.")
    if resolved.suffix.lower() not in IMAGE_SUFFIXES:
        raise OutsideOutputsError(f"Only images can be deleted here: {rel!r}.")
    if not resolved.is_file():
        raise FileNotFoundError(f"No such image in the outputs folder: {rel}")
    return resolved


def move_to_trash(root: Path, rel: str) -> Path:
    """Move the image `rel` (and its `.txt` sidecar, if any) into the trash folder; returns the new image path.
    A name already in the trash gets a numeric suffix, so nothing in the trash is overwritten."""
    source = confined_image(root, rel)
    base = root.resolve()
    target = _free_name(base / TRASH_DIR_NAME / source.relative_to(base))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(os.fspath(source), os.fspath(target))
    for suffix in SIDECAR_SUFFIXES:
        sidecar = source.with_suffix(suffix)
        if sidecar.is_file() and not sidecar.is_symlink():
            shutil.move(os.fspath(sidecar), os.fspath(target.with_suffix(suffix)))
    return target


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    for number in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"Too many files named like {path.name} in the trash.")
