"""A1111 model/LoRA hashes and the persistent hash cache."""
from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from pathlib import Path

import pytest

from webui.core.errors import ModelLoadError
from webui.engine.models import hashing
from webui.engine.models.hashing import HashCache, addnet_hash, model_hash

HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256(b"hello")


def _safetensors(path: Path, header: dict[str, object], data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.fixture
def read_counter(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file hashed goes through `sha256_from`; record the calls."""
    calls: list[Path] = []
    original = hashing.sha256_from

    def counting(path: Path, offset: int = 0) -> str:
        calls.append(Path(path))
        return original(path, offset)

    monkeypatch.setattr(hashing, "sha256_from", counting)
    return calls


def test_model_hash_is_first_ten_hex_of_sha256(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"hello")
    assert model_hash(path) == HELLO_SHA256[:10]
    assert hashing.file_sha256(path) == HELLO_SHA256


def test_model_hash_streams_files_bigger_than_one_chunk(tmp_path: Path) -> None:
    data = os.urandom(hashing.CHUNK_SIZE * 2 + 123)
    path = tmp_path / "big.ckpt"
    path.write_bytes(data)
    assert model_hash(path) == hashlib.sha256(data).hexdigest()[:10]


def test_addnet_hash_skips_the_header(tmp_path: Path) -> None:
    data = b"\x01\x02" * 100
    first = _safetensors(tmp_path / "a.safetensors", {"__metadata__": {"ss_output_name": "a"}}, data)
    second = _safetensors(tmp_path / "b.safetensors", {"__metadata__": {"other": "metadata"}}, data)
    assert addnet_hash(first) == hashlib.sha256(data).hexdigest()[:12]
    assert addnet_hash(first) == addnet_hash(second)  # metadata edits keep the LoRA hash
    assert model_hash(first) != model_hash(second)


@pytest.mark.parametrize("content", [b"abc", struct.pack("<Q", 10_000) + b"{}"])
def test_addnet_hash_of_a_broken_file_is_a_model_load_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError):
        addnet_hash(path)


def test_cache_hit_does_not_read_the_file_again(tmp_path: Path, read_counter: list[Path]) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"hello")
    cache = HashCache(tmp_path / "cache.json")
    assert cache.model_hash(path) == HELLO_SHA256[:10]
    assert cache.model_hash(path) == HELLO_SHA256[:10]
    assert cache.sha256(path) == HELLO_SHA256
    assert len(read_counter) == 1


def test_cache_persists_across_instances(tmp_path: Path, read_counter: list[Path]) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"hello")
    HashCache(tmp_path / "cache.json").model_hash(path)
    assert HashCache(tmp_path / "cache.json").model_hash(path) == HELLO_SHA256[:10]
    assert len(read_counter) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_cache_is_invalidated_when_the_file_changes(tmp_path: Path, read_counter: list[Path]) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"hello")
    cache = HashCache(tmp_path / "cache.json")
    cache.model_hash(path)
    path.write_bytes(b"world")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert cache.model_hash(path) == hashlib.sha256(b"world").hexdigest()[:10]
    assert len(read_counter) == 2


def test_cache_keeps_kinds_apart(tmp_path: Path) -> None:
    data = b"tensor bytes"
    path = _safetensors(tmp_path / "lora.safetensors", {}, data)
    cache = HashCache(tmp_path / "cache.json")
    assert cache.addnet_hash(path) == hashlib.sha256(data).hexdigest()[:12]
    assert cache.model_hash(path) == model_hash(path)
    with pytest.raises(ValueError):
        cache.sha256(path, "md5")


@pytest.mark.parametrize("content", ["not json", "[]", '{"version": 999, "hashes": {}}', '{"version": 1, "hashes": 3}'])
def test_unreadable_cache_file_is_treated_as_empty(tmp_path: Path, content: str) -> None:
    cache_file = tmp_path / "cache.json"
    cache_file.write_text(content)
    path = tmp_path / "m.bin"
    path.write_bytes(b"hello")
    assert HashCache(cache_file).model_hash(path) == HELLO_SHA256[:10]
    assert json.loads(cache_file.read_text())["version"] == 1


def test_concurrent_callers_hash_a_file_once(tmp_path: Path, read_counter: list[Path]) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(hashing.CHUNK_SIZE * 3))
    cache = HashCache(tmp_path / "cache.json")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.model_hash(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert len(read_counter) == 1
