"""What a script's cells report while they run inside the script's one job, and what they produced.

Why: each cell is a whole generation with its own progress start and finish, but the user watches the script
("image i of N"), so a cell's tracker numbers its batches within the whole script and never resets its totals or
its Interrupt flag.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webui.core.progress import ProgressSnapshot, ProgressTracker
from webui.core.results import GeneratedImage, GenerationResult


class ScriptProgress(ProgressTracker):
    """A cell's view of the script's progress: the cell's batches are numbered within the whole script, and the
    text says "image i of N"; a cell's start/finish never resets the script's totals or its Interrupt flag."""

    def __init__(self, outer: ProgressTracker, script: str, cells: int):
        super().__init__()
        self._outer = outer
        self._script = script
        self._cells = cells
        self._cell = 0
        self._offset = 0

    def begin_cell(self, index: int, batch_offset: int) -> None:
        self._cell, self._offset = index, batch_offset
        self._outer.update(job_no=batch_offset, sampling_step=0, textinfo=self.text())

    def text(self) -> str:
        return f"{self._script}: image {self._cell + 1} of {self._cells}"

    def start(self, job: str, job_count: int, sampling_steps: int) -> None:
        self._outer.update(sampling_steps=sampling_steps, sampling_step=0, job_no=self._offset, textinfo=self.text())

    def update(self, **fields: object) -> None:
        if "job_no" in fields:
            fields["job_no"] = self._offset + int(fields["job_no"])  # type: ignore[call-overload]
        if "textinfo" in fields:
            fields["textinfo"] = self.text()
        self._outer.update(**fields)

    def finish(self) -> None:
        """The script's job finishes the real tracker, not each cell."""

    def set_queued(self, count: int) -> None:
        self._outer.set_queued(count)

    def snapshot(self) -> ProgressSnapshot:
        return self._outer.snapshot()


class TileProgress(ScriptProgress):
    """The tiled upscale's progress: "tile i of N"."""

    def text(self) -> str:
        return f"{self._script}: tile {self._cell + 1} of {self._cells}"


@dataclass
class ScriptRun:
    """What a script's cells produced, keyed by grid position (X/Y/Z) or combination number (Prompt matrix)."""

    results: dict[Any, GenerationResult] = field(default_factory=dict)
    warnings: dict[str, None] = field(default_factory=dict)
    interrupted: bool = False

    def add(self, key: Any, result: GenerationResult) -> None:
        self.results[key] = result
        self.warnings.update(dict.fromkeys(result.warnings))

    def first_image(self, key: Any) -> GeneratedImage | None:
        result = self.results.get(key)
        return result.images[0] if result is not None and result.images else None

    def images(self, keys: list[Any]) -> tuple[GeneratedImage, ...]:
        """Every image, in grid order."""
        return tuple(image for key in keys if key in self.results for image in self.results[key].images)
