"""Device and dtype choice, from the launch settings. Device-agnostic: cpu, cuda, mps."""
from __future__ import annotations

import gc
from dataclasses import dataclass

import psutil
import torch

from webui.core.precision import FLOAT32, choose_cpu_precision
from webui.engine.runtime.cpu_features import cpu_flags


@dataclass(frozen=True)
class DeviceConfig:
    """The device, the dtype pipelines load in, and the denoiser's own dtype where it differs (the CPU fast path:
    a bfloat16 UNet/transformer inside a float32 pipeline, see `webui/core/precision.py`)."""

    device: torch.device
    dtype: torch.dtype
    denoiser_dtype: torch.dtype | None = None
    precision_note: str = ""

    @classmethod
    def from_settings(cls, device: str, half_precision: bool, cpu_precision: str = FLOAT32,
                      flags: frozenset[str] | None = None) -> DeviceConfig:
        """fp16 where it is fast and supported (CUDA); on a CPU float32, or the bfloat16 fast path for the
        denoiser when `cpu_precision` allows it (CPU fp16 is not offered: it was measured ~10x slower)."""
        if device.startswith("cuda"):
            dtype = torch.float16 if half_precision else torch.float32
            return cls(torch.device(device), dtype, precision_note=str(dtype).removeprefix("torch."))
        if device != "cpu":
            return cls(torch.device(device), torch.float32, precision_note="float32")
        choice = choose_cpu_precision(cpu_precision, cpu_flags() if flags is None else flags)
        denoiser = torch.bfloat16 if choice.fast_path else None
        return cls(torch.device(device), torch.float32, denoiser, choice.reason)

    @property
    def split_denoiser(self) -> bool:
        """True when the denoiser runs in another dtype than the rest of the pipeline."""
        return self.denoiser_dtype is not None and self.denoiser_dtype != self.dtype


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
