"""Small synthetic training datasets in kohya layout, for the training tests and benchmarks.

Why synthetic: tests must run offline and fast; a few flat-coloured shapes are enough for a tiny model's loss to
fall, and their sizes can be chosen to exercise the aspect buckets.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

_COLOURS = ((220, 40, 40), (40, 180, 60), (40, 70, 220), (230, 200, 30), (150, 50, 190), (30, 190, 200))


def shape_image(index: int, size: tuple[int, int]) -> Image.Image:
    """A coloured disc or square on a light background; deterministic per index."""
    width, height = size
    image = Image.new("RGB", size, (235, 235, 230))
    draw = ImageDraw.Draw(image)
    colour = _COLOURS[index % len(_COLOURS)]
    box = (width // 4, height // 4, 3 * width // 4, 3 * height // 4)
    (draw.ellipse if index % 2 == 0 else draw.rectangle)(box, fill=colour)
    return image


def write_kohya_dataset(root: Path, folders: dict[str, int] | None = None, images_per_folder: int = 2,
                        sizes: tuple[tuple[int, int], ...] = ((32, 32),), captions: bool = True) -> Path:
    """`root/<repeats>_<name>/NNN.png` with `NNN.txt` captions (every other image without one when
    `captions` is False, so the folder-name fallback is used)."""
    folders = folders or {"shapes": 2}
    index = 0
    for name, repeats in folders.items():
        folder = root / f"{repeats}_{name}"
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(images_per_folder):
            size = sizes[index % len(sizes)]
            shape_image(index, size).save(folder / f"{number:03d}.png")
            kind = "disc" if index % 2 == 0 else "square"
            if captions or number % 2 == 0:
                (folder / f"{number:03d}.txt").write_text(f"{name}, a {kind}, flat colour\n", encoding="utf-8")
            index += 1
    return root
