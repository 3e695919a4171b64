"""Resume state: everything needed to continue a run so that its losses equal an uninterrupted run's.

Why this much: the network tensors alone are not enough. AdamW's moments, the schedule position, where in the
epoch's batch order we are, and the RNG streams that draw noise and timesteps all decide the next loss (measured:
bit-identical losses when all of them are restored). A state folder is written under a temporary name and
renamed, so a crash mid-write leaves the previous state usable; the newest `keep` folders are kept.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from webui.core.errors import ValidationError

_STATE_DIR = re.compile(r"^step-(\d{8})$")
PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class Progress:
    """Where the run stands: optimizer steps done, and the next batch to train (epoch, index in its order)."""

    global_step: int
    epoch: int
    batch_index: int
    micro_step: int
    started_at: float
    last_sample: str = ""


def state_dirs(root: Path) -> list[Path]:
    """Complete state folders, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STATE_DIR.match(p.name))
             and (p / PROGRESS_FILE).is_file()]
    return [p for _, p in sorted(found)]


def find_resume_dir(root: Path, resume: str) -> Path | None:
    """`resume` "latest" -> newest state under `root` (None when there is none yet); a path -> that folder."""
    if not resume:
        return None
    if resume == "latest":
        found = state_dirs(root)
        return found[-1] if found else None
    path = Path(resume).expanduser()
    if not (path / PROGRESS_FILE).is_file():
        raise ValidationError(f"'{resume}' is not a training state folder (no {PROGRESS_FILE}).")
    return path


def save_state(root: Path, progress: Progress, network_state: dict[str, torch.Tensor],
               optimizer: torch.optim.Optimizer, scheduler: Any, rng: dict[str, torch.Tensor],
               keep: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{progress.global_step:08d}"
    staging = root / f".staging-{progress.global_step:08d}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    safetensors.torch.save_file({k: v.contiguous() for k, v in network_state.items()},
                                str(staging / "network.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
               staging / "training.pt")
    (staging / PROGRESS_FILE).write_text(json.dumps(asdict(progress), indent=1), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    for old in state_dirs(root)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return target


@dataclass(frozen=True)
class LoadedState:
    progress: Progress
    network: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, torch.Tensor]


def load_state(folder: Path) -> LoadedState:
    try:
        progress = Progress(**json.loads((folder / PROGRESS_FILE).read_text(encoding="utf-8")))
        network = safetensors.torch.load_file(str(folder / "network.safetensors"))
        blob = torch.load(folder / "training.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, TypeError, RuntimeError) as err:
        raise ValidationError(f"Training state '{folder}' cannot be read: {err}") from err
    return LoadedState(progress, network, blob["optimizer"], blob["scheduler"], blob["rng"])
