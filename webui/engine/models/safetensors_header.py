"""Read a `.safetensors` file's header (names, dtypes, shapes, metadata) without loading any tensor.

Why: the model registry probes every file in `models/` to tell checkpoints, VAEs and LoRAs apart, and the loader
infers an architecture from tensor shapes. Both only need the JSON header, which is a few hundred KB even for a
7 GB SDXL file, so this keeps scanning and detection cheap and safe on truncated or fake files.

Format: 8 bytes little-endian unsigned header length N, then N bytes of UTF-8 JSON
`{"__metadata__": {str: str}, name: {"dtype": str, "shape": [int], "data_offsets": [begin, end]}, ...}`,
then the raw tensor bytes; offsets are relative to the end of the header.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import NamedTuple

from webui.core.errors import ModelLoadError

# A real header is at most a few MB (about 100 bytes a tensor); anything larger is garbage, not a header.
MAX_HEADER_BYTES = 100 * 1024 * 1024

_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}


class TensorInfo(NamedTuple):
    """One tensor's entry in the header; unpacks as `(dtype, shape)`."""

    dtype: str
    shape: tuple[int, ...]


def _corrupt(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(f"Model file '{path.name}' is corrupt or truncated ({why}); download it again.")


def _read_header_bytes(path: Path) -> tuple[bytes, int]:
    """Return the raw JSON header and the total file size, checking the length prefix against the file."""
    try:
        file_size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _corrupt(path, "file is shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", prefix)
            if length < 2 or length > MAX_HEADER_BYTES or 8 + length > file_size:
                raise _corrupt(path, f"header length {length} does not fit a file of {file_size} bytes")
            raw = handle.read(length)
    except OSError as err:
        raise ModelLoadError(f"Cannot read model file '{path.name}': {err.strerror or err}.") from err
    if len(raw) != length:
        raise _corrupt(path, "header is cut short")
    return raw, file_size


def _parse_entry(path: Path, name: str, entry: object, data_size: int) -> TensorInfo:
    """Validate one tensor entry: known dtype, integer shape, offsets inside the data area and matching the size."""
    if not isinstance(entry, dict):
        raise _corrupt(path, f"header entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPE_SIZES:
        raise _corrupt(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _corrupt(path, f"tensor {name!r} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise _corrupt(path, f"tensor {name!r} has invalid data offsets")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise _corrupt(path, f"tensor {name!r} lies outside the file")
    count = 1
    for dim in shape:
        count *= dim
    if end - begin != count * _DTYPE_SIZES[dtype]:
        raise _corrupt(path, f"tensor {name!r} has {end - begin} bytes for shape {shape}")
    return TensorInfo(dtype=dtype, shape=tuple(shape))


def read_safetensors_header(path: Path | str) -> tuple[dict[str, str], dict[str, TensorInfo]]:
    """Return `(metadata, {tensor name: TensorInfo(dtype, shape)})` reading only the header.

    Raises `ModelLoadError` naming the file when the header is missing, not JSON, or points outside the file
    (which is what a partial download looks like).
    """
    path = Path(path)
    raw, file_size = _read_header_bytes(path)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _corrupt(path, "header is not valid JSON") from err
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _corrupt(path, "metadata is not an object")
    data_size = file_size - 8 - len(raw)
    tensors = {name: _parse_entry(path, name, entry, data_size) for name, entry in header.items()}
    return {str(k): str(v) for k, v in metadata.items()}, tensors


def header_shapes(path: Path | str) -> dict[str, tuple[int, ...]]:
    """Shapes only, the input `architecture.infer_architecture` wants."""
    _, tensors = read_safetensors_header(path)
    return {name: info.shape for name, info in tensors.items()}
