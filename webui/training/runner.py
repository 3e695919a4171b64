"""Run one training job in this process: the body of `python -m webui.train` and of the worker's child process.

Why one runner: the web UI's background job and a scripted run must be the same program (same trainer, same
outputs, same events), so the worker simply launches this CLI and shows users the exact command. Failures end
as a `failed` event plus a non-zero exit code with a one-line message; the traceback goes to the log.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from webui.core.errors import WebUIError
from webui.training import events as ev
from webui.training.config import TrainingConfig
from webui.training.events import EventSink, StopFlag
from webui.training.session import TrainerPaths
from webui.training.trainer import Trainer

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3


@dataclass(frozen=True)
class RunPaths:
    """Folders of a run: the app data dir decides the defaults (models/Lora or models/LyCORIS, cache/)."""

    data_dir: Path
    work_dir: Path | None = None
    events_file: Path | None = None
    stop_file: Path | None = None

    def output_dir(self, config: TrainingConfig) -> Path:
        if config.output_dir:
            return Path(config.output_dir).expanduser()
        return self.data_dir / "models" / ("LyCORIS" if config.is_lycoris else "Lora")

    def trainer_paths(self, config: TrainingConfig) -> TrainerPaths:
        work = self.work_dir or self.data_dir / "training" / config.output_name
        return TrainerPaths(self.output_dir(config), work, self.data_dir / "cache")


class ConsoleProgress:
    """A tqdm progress bar fed by step events, plus one line per save/sample/note."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream
        self.bar: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == ev.STEP:
            self._step(event)
        elif kind in (ev.SAVED, ev.SAMPLE, ev.NOTE, ev.DONE, ev.CANCELLED, ev.FAILED):
            self._line(event)

    def _step(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event["total_steps"], initial=event["step"] - 1, file=self.stream, unit="step")
        self.bar.update(event["step"] - self.bar.n)
        self.bar.set_postfix(epoch=f"{event['epoch']}/{event['total_epochs']}", loss=f"{event['loss']:.4f}")

    def _line(self, event: dict[str, Any]) -> None:
        text = {ev.SAVED: lambda e: f"{'removed' if e.get('removed') else 'saved'} {e['path']}",
                ev.SAMPLE: lambda e: f"samples: {', '.join(e['paths'])}",
                ev.NOTE: lambda e: f"note: {e['message']}",
                ev.DONE: lambda e: f"done: {e['final_file']}",
                ev.CANCELLED: lambda e: f"cancelled at step {e['step']} (resume with --resume latest)",
                ev.FAILED: lambda e: f"error: {e['message']}"}[event["type"]](event)
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)  # noqa: T201 - console output is this class's job

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_job(config: TrainingConfig, paths: RunPaths, *, console: bool = True, notes: tuple[str, ...] = (),
            on_trainer: Callable[[Trainer], None] | None = None) -> int:
    """Train `config`; returns the exit code (0 done, 1 failed, 3 cancelled). Under `accelerate launch` only
    rank 0 reports (events, console); the other ranks train silently."""
    is_main = int(os.environ.get("RANK", "0")) == 0
    progress = ConsoleProgress() if console and is_main else None
    events_file = paths.events_file or paths.trainer_paths(config).work_dir / "events.jsonl"
    sink = EventSink(events_file if is_main else None, listeners=(progress,) if progress else ())
    try:
        for note in notes:
            sink.note(note)
        trainer = Trainer(config, paths.trainer_paths(config), sink, StopFlag(paths.stop_file))
        if on_trainer is not None:
            on_trainer(trainer)
        result = trainer.run()
        return EXIT_DONE if result.status == ev.DONE else EXIT_CANCELLED
    except WebUIError as err:
        sink.emit(ev.FAILED, message=str(err))
        return EXIT_FAILED
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - anything else still ends as a failed job
        log.exception("Training failed")
        sink.emit(ev.FAILED, message=f"Training failed: {type(err).__name__}: {err}")
        return EXIT_FAILED
    finally:
        if progress is not None:
            progress.close()
        sink.close()


def with_resume(config: TrainingConfig, resume: str | None) -> TrainingConfig:
    return replace(config, resume=resume) if resume is not None else config
