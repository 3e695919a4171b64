"""Model file hashes in A1111's forms, with a persistent cache.

Why: the infotext records `Model hash` (first 10 hex of the file's sha256) and `Lora hashes` (first 12 hex of the
"addnet" hash: sha256 of a safetensors file after its header, so editing metadata keeps the hash). Civitai and
A1111 users look models up by these. Hashing a 7 GB checkpoint takes many seconds, so each file is hashed once and
the digest is kept in a JSON file keyed by (absolute path, size, mtime_ns): a changed file is hashed again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from webui.core.errors import ModelLoadError

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
MODEL_HASH_LENGTH = 10
ADDNET_HASH_LENGTH = 12
_SAFETENSORS_LENGTH_BYTES = 8
_CACHE_VERSION = 1


# ----------------------------------------------------------------------------------------------------------------
# Plain hashing


def sha256_from(path: Path, offset: int = 0) -> str:
    """Full sha256 hex digest of a file's bytes from `offset` on, read in 1 MiB chunks (never whole in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safetensors_data_offset(path: Path) -> int:
    """Where a safetensors file's tensor data starts: 8-byte little-endian header length + the header itself."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        raw = handle.read(_SAFETENSORS_LENGTH_BYTES)
    if len(raw) < _SAFETENSORS_LENGTH_BYTES:
        raise ModelLoadError(f"'{Path(path).name}' is too short to be a safetensors file.")
    offset = _SAFETENSORS_LENGTH_BYTES + int.from_bytes(raw, "little")
    if offset > size:
        raise ModelLoadError(f"'{Path(path).name}' is not a valid safetensors file (header runs past its end).")
    return offset


def file_sha256(path: Path) -> str:
    """Full sha256 of the whole file (A1111's "sha256", shown on civitai)."""
    return sha256_from(path)


def addnet_sha256(path: Path) -> str:
    """Full "addnet" sha256: the tensor data of a safetensors file, header excluded."""
    return sha256_from(path, safetensors_data_offset(path))


def model_hash(path: Path) -> str:
    """A1111's `Model hash`: the first 10 hex characters of the file's sha256."""
    return file_sha256(path)[:MODEL_HASH_LENGTH]


def addnet_hash(path: Path) -> str:
    """A1111's LoRA short hash (in `Lora hashes`): the first 12 hex characters of the addnet sha256."""
    return addnet_sha256(path)[:ADDNET_HASH_LENGTH]


# ----------------------------------------------------------------------------------------------------------------
# Cache

# The digests a cache can hold, by the name used in the cache file.
HASH_KINDS: Mapping[str, Callable[[Path], str]] = MappingProxyType({"sha256": file_sha256, "addnet": addnet_sha256})


@dataclass(frozen=True)
class _FileKey:
    """Identity of one version of a file: a rewrite changes its size or mtime, so its hash is recomputed."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> _FileKey:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns)


class HashCache:
    """Full sha256 digests per (kind, file version), loaded lazily from and saved to one JSON file.

    Thread-safe: one lock guards the table; a per-file lock makes concurrent callers for the same file wait for one
    computation instead of each reading gigabytes. Saving writes a temp file and renames it, so a crash never leaves
    a truncated cache. A missing or unreadable cache file just means an empty cache.
    """

    def __init__(self, cache_file: Path) -> None:
        self._cache_file = Path(cache_file)
        self._lock = threading.Lock()
        self._file_locks: dict[tuple[str, str], threading.Lock] = {}
        self._entries: dict[str, dict[str, dict[str, object]]] | None = None

    # -- public API -----------------------------------------------------------------------------------------------

    def model_hash(self, path: Path) -> str:
        """Cached `Model hash` (10 hex)."""
        return self.sha256(path, "sha256")[:MODEL_HASH_LENGTH]

    def cached_model_hash(self, path: Path) -> str | None:
        """The `Model hash` if it is already known for this file version; never reads the file (listing
        thousands of models must stay fast)."""
        try:
            digest = self._lookup("sha256", _FileKey.of(path))
        except OSError:
            return None
        return digest[:MODEL_HASH_LENGTH] if digest else None

    def addnet_hash(self, path: Path) -> str:
        """Cached LoRA short hash (12 hex)."""
        return self.sha256(path, "addnet")[:ADDNET_HASH_LENGTH]

    def sha256(self, path: Path, kind: str = "sha256") -> str:
        """The full digest of `kind` ("sha256" or "addnet") for `path`, computed only if not cached for this
        exact file version."""
        compute = HASH_KINDS.get(kind)
        if compute is None:
            raise ValueError(f"Unknown hash kind '{kind}'. Known: {', '.join(HASH_KINDS)}.")
        key = _FileKey.of(path)
        cached = self._lookup(kind, key)
        if cached is not None:
            return cached
        with self._file_lock(kind, key.path):
            cached = self._lookup(kind, key)  # Another thread may have finished it while we waited.
            if cached is not None:
                return cached
            digest = self._compute(compute, Path(key.path))
            self._store(kind, key, digest)
            return digest

    # -- internals ------------------------------------------------------------------------------------------------

    def _compute(self, compute: Callable[[Path], str], path: Path) -> str:
        """Hash one file, logging it: hashing a big checkpoint is slow enough that users wonder what is going on."""
        logger.info("Calculating hash of %s", path.name)
        return compute(path)

    def _file_lock(self, kind: str, path: str) -> threading.Lock:
        with self._lock:
            return self._file_locks.setdefault((kind, path), threading.Lock())

    def _lookup(self, kind: str, key: _FileKey) -> str | None:
        with self._lock:
            entry = self._loaded().get(kind, {}).get(key.path)
        if isinstance(entry, dict) and entry.get("size") == key.size and entry.get("mtime_ns") == key.mtime_ns:
            digest = entry.get("sha256")
            return digest if isinstance(digest, str) else None
        return None

    def _store(self, kind: str, key: _FileKey, digest: str) -> None:
        with self._lock:
            entries = self._loaded()
            entries.setdefault(kind, {})[key.path] = {"size": key.size, "mtime_ns": key.mtime_ns, "sha256": digest}
            self._save(entries)

    def _loaded(self) -> dict[str, dict[str, dict[str, object]]]:
        """The table, read from disk on first use. Caller holds `self._lock`."""
        if self._entries is None:
            self._entries = _read_cache_file(self._cache_file)
        return self._entries

    def _save(self, entries: dict[str, dict[str, dict[str, object]]]) -> None:
        """Write the table atomically. Caller holds `self._lock`. A failed save only costs a re-hash later."""
        payload = json.dumps({"version": _CACHE_VERSION, "hashes": entries}, indent=1, sort_keys=True)
        temp = self._cache_file.with_name(f".{self._cache_file.name}.{secrets.token_hex(6)}.tmp")
        try:
            self._cache_file.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(payload, encoding="utf-8")
            os.replace(temp, self._cache_file)
        except OSError as err:
            temp.unlink(missing_ok=True)
            logger.warning("Could not save the hash cache %s: %s", self._cache_file, err)


def _read_cache_file(cache_file: Path) -> dict[str, dict[str, dict[str, object]]]:
    """The `hashes` table of a cache file; empty when the file is missing, unreadable or of another version."""
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.warning("Ignoring unreadable hash cache %s: %s", cache_file, err)
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION or not isinstance(data.get("hashes"), dict):
        return {}
    return {kind: table for kind, table in data["hashes"].items() if isinstance(table, dict)}
