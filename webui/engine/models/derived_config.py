"""Derived diffusers config folders: a shipped family config with sizes read from a file's own tensors, plus
generated tokenizer files, written once into the cache under a content hash (so no hub download is ever needed)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from webui.engine.models.clip_tokenizer import write_tokenizer_files

logger = logging.getLogger(__name__)


def _component_file(component: str) -> str:
    if component == "model_index":
        return "model_index.json"
    if component == "scheduler":
        return "scheduler/scheduler_config.json"
    return f"{component}/config.json"


def _derived_files(base_dir: Path, overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Every JSON file of the shipped folder, with each component's overrides applied (relative path -> text)."""
    files: dict[str, str] = {}
    for source in sorted(base_dir.rglob("*.json")):
        rel = source.relative_to(base_dir).as_posix()
        data = json.loads(source.read_text(encoding="utf-8"))
        for component, fields in overrides.items():
            if _component_file(component) == rel:
                data.update(fields)
        files[rel] = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return files


def _tokenizer_source(cache_dir: Path, pad_token: str) -> Path:
    """One generated tokenizer folder per pad token, shared by all derived folders."""
    name = "clip-pad-" + hashlib.sha256(pad_token.encode()).hexdigest()[:8]
    return write_tokenizer_files(cache_dir / "tokenizers" / name, pad_token=pad_token)


def write_derived_config(
    cache_dir: Path,
    base_dir: Path,
    overrides: Mapping[str, Mapping[str, Any]],
    tokenizers: tuple[tuple[str, str], ...] = (),
) -> Path:
    """Write (once) the shipped `base_dir` with `overrides` and tokenizer folders; return the folder.

    The folder name holds a hash of everything written, so it is immutable once complete; it is assembled in a
    temporary folder and renamed into place, so a crash or a concurrent writer never leaves half a folder.
    """
    files = _derived_files(base_dir, overrides)
    digest = hashlib.sha256(json.dumps([files, list(tokenizers)], sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) / "configs"
    target = root / f"{base_dir.name}-{digest}"
    if (target / "model_index.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        for rel, text in files.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text, encoding="utf-8")
        for folder, pad in tokenizers:
            shutil.copytree(_tokenizer_source(Path(cache_dir), pad), staging / folder)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
        logger.debug("Derived config %s was written concurrently", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
