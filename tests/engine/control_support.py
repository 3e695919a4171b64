"""What the ControlNet, T2I-Adapter and reference tests share: control images, pixel arrays and a services object
over tiny checkpoints with the files a test writes into `models/ControlNet`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from tests.conftest import make_data_dir, make_settings


def square(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill="white")
    return image


def stripes(size: int = 64, background: str = "black", line: str = "white") -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    for x in range(0, size, 8):
        ImageDraw.Draw(image).rectangle((x, 0, x + 3, size), fill=line)
    return image


def pixels(result, index: int = 0) -> np.ndarray:
    return np.asarray(result.images[index].image).astype(np.int16)


def control_services(root: Path, checkpoints: dict[str, Path], families: tuple[str, ...],
                     write: Callable[[Path], None]):
    """Services over the tiny checkpoints of `families` (tiny SD1 selected), after `write(<models>/ControlNet)`.
    The caller shuts its executor down."""
    from webui.services import build_services

    torch.set_num_threads(1)
    data_dir = make_data_dir(root, checkpoints, families)
    write(data_dir / "models" / "ControlNet")
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    return services
