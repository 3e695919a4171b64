"""Device and dtype choice, from the launch settings. Device-agnostic: cpu, cuda, mps."""
from __future__ import annotations

from dataclasses import dataclass

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
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
