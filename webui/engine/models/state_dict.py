"""Read model files' tensors safely: safetensors as they are, pickles (`.ckpt`, `.pt`, ...) only through
`torch.load(weights_only=True)`.

Why a module of its own: every loader (checkpoints, VAEs, embeddings, LoRA files) reads files this way, and the
refusal of pickles that need to run code must live in exactly one place.
"""
from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from webui.core.errors import ModelLoadError, UnsafeFileError
from webui.engine.models.safetensors_header import header_shapes, read_safetensors_header

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_ALL_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


class _InertPickledObject:
    """Stands in for training-time objects that A1111-era `.ckpt` files carry next to the weights.

    PyTorch Lightning saved its `ModelCheckpoint` callback and numpy scalars (e.g. the global step) in SD 1.x
    checkpoints; A1111's restricted unpickler allows them by name. We map those names to this class, which runs
    none of their code and keeps nothing, so such files load with `weights_only=True`.
    """

    def __new__(cls, *args: object, **kwargs: object) -> _InertPickledObject:
        return super().__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        """Accept and drop whatever the pickle passes."""

    def __setstate__(self, state: object) -> None:
        """Drop the pickled state."""


_HARMLESS_PICKLE_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
)
_UNSAFE_MARKERS = ("Unsupported global", "unrecognized function", "allowlisted", "is blocked", "must be imported")


@contextlib.contextmanager
def harmless_pickle_globals() -> Iterator[None]:
    """Allow the known-harmless globals (as inert stand-ins) for weights-only loads inside this block."""
    with torch.serialization.safe_globals([(_InertPickledObject, name) for name in _HARMLESS_PICKLE_GLOBALS]):
        yield


def _unwrap_state_dict(data: object, path: Path) -> dict[str, Any]:
    """A1111 reads `checkpoint["state_dict"]` when present (Lightning training checkpoints nest the weights)."""
    while isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise ModelLoadError(f"'{path.name}' does not contain a state dict (found {type(data).__name__}).")
    return dict(data)


def _load_pickle(path: Path) -> object:
    try:
        with harmless_pickle_globals():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if any(marker in str(err) for marker in _UNSAFE_MARKERS):
            raise UnsafeFileError(
                f"Loading '{path.name}' was refused: it needs to run code to load, which could harm this computer. "
                "If you trust its source, convert it to .safetensors with another tool and load that instead."
            ) from err
        raise ModelLoadError(f"Model file '{path.name}' is corrupt or truncated (not a readable pickle).") from err
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, IndexError) as err:
        raise ModelLoadError(f"Model file '{path.name}' is corrupt or truncated ({err}).") from err


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    read_safetensors_header(path)  # precise "corrupt or truncated" message before loading anything
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"Model file '{path.name}' is corrupt or truncated ({err}).") from err


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"Model file '{path}' does not exist.")
    if path.suffix.lower() not in _ALL_SUFFIXES:
        raise ModelLoadError(f"'{path.name}' is not a model file type we can read ({', '.join(_ALL_SUFFIXES)}).")


def load_state_dict(path: Path | str) -> dict[str, Any]:
    """All tensors of a model file on the CPU, `state_dict` nesting removed.

    `.safetensors` via safetensors; `.ckpt/.pt/.pth/.bin` only via `torch.load(weights_only=True)`. Values are
    tensors for checkpoints; embedding `.pt` files keep their nested dicts (`string_to_param`).
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path)
    return _unwrap_state_dict(_load_pickle(path), path)


def read_shapes(path: Path | str) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a model file: header only for safetensors; pickles must be loaded (weights-only)."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return header_shapes(path)
    state = load_state_dict(path)
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
