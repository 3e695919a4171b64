"""`python -m webui.train CONFIG.json`: run one LoRA / LyCORIS training job in the foreground.

CONFIG.json is the Train tab's preset format or a SimpleTuner `config.json`. Progress shows as a console bar;
the outputs are the same as a job from the web UI (the UI's background worker runs exactly this command). Exits
0 when done, 1 with a one-line message on failure, 3 when cancelled (a stop file appeared), 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webui.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="training preset JSON or SimpleTuner config.json")
    parser.add_argument("--data-dir", type=Path, default=Path.cwd(),
                        help="app data folder: models/Lora or models/LyCORIS get the results, cache/ the caches")
    parser.add_argument("--work-dir", type=Path, help="resume state and samples (default DATA/training/NAME)")
    parser.add_argument("--events", type=Path, help="write progress events as JSON lines here")
    parser.add_argument("--stop-file", type=Path, help="stop cleanly (saving resume state) when this file appears")
    parser.add_argument("--resume", help="'latest' or a state folder: continue a previous run")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the config's device)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _set_threads(threads: int) -> None:
    """Thread counts are set explicitly (the worker's child must not oversubscribe a shared CPU)."""
    if threads > 0:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        import torch

        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _set_threads(args.threads)
    from dataclasses import replace

    from webui.core.errors import WebUIError
    from webui.training.config_files import load_config_file
    from webui.training.events import FAILED, EventSink
    from webui.training.runner import EXIT_FAILED, RunPaths, run_job, with_resume

    try:
        loaded = load_config_file(args.config, device=args.device or "cpu")
    except WebUIError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201 - CLI output
        if args.events:
            sink = EventSink(args.events)
            sink.emit(FAILED, message=str(err))
            sink.close()
        return EXIT_FAILED
    config = with_resume(loaded.config, args.resume)
    if args.device:
        config = replace(config, device=args.device)
    notes = tuple(loaded.notes)
    if loaded.ignored:
        notes += (f"Ignored config keys (not used by this trainer): {', '.join(loaded.ignored)}",)
    paths = RunPaths(args.data_dir.resolve(), args.work_dir, args.events, args.stop_file)
    return run_job(config, paths, console=not args.quiet, notes=notes)


if __name__ == "__main__":
    sys.exit(main())
