"""Device and dtype choice, from the launch settings. Device-agnostic: cpu, cuda, mps."""
from __future__ import annotations

import gc
from dataclasses import dataclass

import psutil
import torch


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def from_settings(cls, device: str, half_precision: bool) -> DeviceConfig:
        # fp16 only where it is fast and supported (CUDA); CPU fp16/bf16 was measured ~10x slower than fp32.
        dtype = torch.float16 if half_precision and device.startswith("cuda") else torch.float32
        return cls(torch.device(device), dtype)


def configure_torch_threads(threads: int | None) -> None:
    """Set torch's CPU threads once at start (the executor's worker inherits the setting)."""
    if threads:
        torch.set_num_threads(threads)


def release_memory(device: torch.device) -> None:
    """Give freed tensors back after a model switch (CUDA caches allocations otherwise)."""

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def _ram_stats() -> dict[str, float]:
    """A1111's `ram` block: this process's resident memory against the machine's total."""

    used = psutil.Process().memory_info().rss
    total = psutil.virtual_memory().total
    return {"free": float(total - used), "used": float(used), "total": float(total)}


def _cuda_stats(device: torch.device) -> dict[str, object]:
    """A1111's `cuda` block (bytes): the GPU's free/total and torch's allocator counters."""
    index = device.index if device.type == "cuda" and device.index is not None else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    stats = torch.cuda.memory_stats(index)

    def pair(key: str) -> dict[str, int]:
        return {"current": int(stats.get(f"{key}.all.current", 0)), "peak": int(stats.get(f"{key}.all.peak", 0))}

    return {
        "system": {"free": free, "used": total - free, "total": total},
        "active": pair("active_bytes"),
        "allocated": pair("allocated_bytes"),
        "reserved": pair("reserved_bytes"),
        "inactive": pair("inactive_split_bytes"),
        "events": {"retries": int(stats.get("num_alloc_retries", 0)), "oom": int(stats.get("num_ooms", 0))},
    }


def memory_stats(device: torch.device) -> dict[str, object]:
    """RAM and (when a CUDA GPU is present) GPU memory, in A1111's /sdapi/v1/memory shape."""
    cuda: dict[str, object] = {"error": "unavailable"}
    if torch.cuda.is_available():
        try:
            cuda = _cuda_stats(device)
        except RuntimeError as exc:  # a GPU that is present but not usable (driver mismatch, busy)
            cuda = {"error": str(exc)}
    return {"ram": _ram_stats(), "cuda": cuda}
