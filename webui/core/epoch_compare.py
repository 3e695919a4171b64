""""Compare epochs" for a training job: which saved files to compare and the X/Y/Z plot that compares them.

Why an X/Y/Z plot and not a bespoke grid: users already read X/Y/Z grids (the guide compares LoRA epochs with
Prompt S/R over `<lora:name-000001:1>`), the grid gets X/Y/Z's infotext and legends, and the same plan can be run
again from the X/Y/Z script with other prompts or weights.

Pure: the caller passes the job's `saved` events, its final file and which files still exist.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webui.core.errors import ValidationError
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_values import join_csv

PROMPT_SR = "Prompt S/R"


@dataclass(frozen=True)
class EpochFile:
    """One file to compare: its LoRA name (the file stem, what `<lora:...>` names), path and training step."""

    name: str
    path: Path
    step: int
    final: bool = False


def saved_files(events: Iterable[Mapping[str, Any]], final_file: str, exists: Iterable[Path]) -> list[EpochFile]:
    """The job's saved network files that still exist, oldest first, the final file last.

    `saved` events name every intermediate file; pruning ("keep last K") emits them again with `removed`, and a
    user may delete files by hand, so only files in `exists` count. A resumed job may save the same file twice:
    the later event wins."""
    present = {Path(p) for p in exists}
    by_path: dict[Path, EpochFile] = {}
    for event in events:
        if event.get("type") != "saved":
            continue
        path = Path(str(event["path"]))
        if event.get("removed"):
            by_path.pop(path, None)
            continue
        by_path[path] = EpochFile(path.stem, path, int(event.get("step") or 0))
    files = sorted((f for f in by_path.values() if f.path in present), key=lambda f: (f.step, f.name))
    if final_file and Path(final_file) in present and Path(final_file) not in by_path:
        last = max((f.step for f in files), default=0)
        files.append(EpochFile(Path(final_file).stem, Path(final_file), last + 1, final=True))
    return files


@dataclass(frozen=True)
class ComparePlan:
    """The base prompt (tagged with the first file's LoRA) and the X axis that swaps in each file's name."""

    prompt: str
    x_axis: AxisInput
    files: tuple[EpochFile, ...]


def plan_compare(files: list[EpochFile], prompt: str, weight: float = 1.0) -> ComparePlan:
    """Prompt S/R over the files' names. The first name is both the searched text and the first cell, as A1111's
    Prompt S/R works; names are CSV-quoted so a comma in a file name cannot split the axis."""
    if not files:
        raise ValidationError("This job has no saved network files to compare yet (they are written every N "
                              "epochs or steps, and at the end).")
    if len(files) < 2:
        raise ValidationError(f"Only one saved file ({files[0].path.name}); comparing needs at least two. Set "
                              f"'Save every N epochs' (or steps) before training.")
    text = " ".join(prompt.split()) or "a picture"
    tag = f"<lora:{files[0].name}:{weight:g}>"
    return ComparePlan(prompt=f"{text} {tag}", x_axis=AxisInput(PROMPT_SR, join_csv([f.name for f in files])),
                       files=tuple(files))

