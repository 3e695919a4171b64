"""A1111-style output file names: `outputs/txt2img-images/2024-05-01/00042-1234.png`.

Why A1111's scheme: users keep their old output folders and scripts that sort by the running number; continuing
the count from the files already in a folder keeps one sequence per day, with no counter file to get out of sync.
Pure Python (pathlib only): the engine writes the bytes.
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path

# The running number is the leading digits of a file name, ended by "-", "." or the end of the name.
_SEQUENCE_RE = re.compile(r"^(\d+)(?:[-.]|$)")
SEQUENCE_WIDTH = 5


def dated_folder(root: Path, kind: str, today: date) -> Path:
    """`root/<kind>/YYYY-MM-DD`, e.g. `outputs/txt2img-images/2024-05-01`. Nothing is created here.

    `kind` is one plain folder name ("txt2img-images", "img2img-grids", ...); anything that would leave `root`
    is refused, since the name may come from settings.
    """
    if not kind or kind in {".", ".."} or "/" in kind or "\\" in kind:
        raise ValueError(f"Output kind must be a plain folder name, got {kind!r}.")
    return Path(root) / kind / today.isoformat()


def next_sequence_number(folder: Path) -> int:
    """One more than the highest running number of the files in `folder` (0 for a missing or empty folder)."""
    highest = -1
    if Path(folder).is_dir():
        for entry in Path(folder).iterdir():
            match = _SEQUENCE_RE.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def next_image_path(folder_for_day: Path, seed: int, ext: str = "png") -> Path:
    """`folder/NNNNN-SEED.ext`, numbered after the highest existing number in the folder.

    Counting (rather than taking the first free name) matches A1111: deleting an old image never makes a new one
    sort before it. The caller saves through a single worker, so two saves never race for the same number.
    """
    suffix = ext.lstrip(".").lower()
    if not suffix:
        raise ValueError("File extension must not be empty.")
    number = next_sequence_number(folder_for_day)
    return Path(folder_for_day) / f"{number:0{SEQUENCE_WIDTH}d}-{seed}.{suffix}"
