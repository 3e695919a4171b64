"""What the UI tells a user about the device generation runs on: its kind, its name and the CPU threads torch uses.

Why apart from `devices.py`: that module chooses the device; this one only describes it, for a one-line note."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceDescription:
    kind: str  # torch device type: "cpu", "cuda", "mps", ...
    name: str  # the GPU's name where torch knows it, else ""
    threads: int  # CPU threads torch uses for its work


def describe_device(device: torch.device) -> DeviceDescription:
    """The device's kind and name (a CUDA device whose name cannot be read is described without it)."""
    name = ""
    if device.type == "cuda":
        try:
            name = torch.cuda.get_device_name(device)
        except (RuntimeError, AssertionError):
            name = ""
    return DeviceDescription(device.type, name, torch.get_num_threads())
