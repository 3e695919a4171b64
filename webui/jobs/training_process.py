"""A training job's child process: its command line, environment, start, liveness and process-group signals.

Why a child process per job (spawned as a fresh interpreter, never forked: a fork after the parent used torch
threads was measured to deadlock): a crash or an out-of-memory kill ends only that job, the UI stays responsive,
and thread counts are set explicitly in the child. The child is `python -m webui.train` (or `accelerate launch`
of it), the very command users can run themselves; it is recorded with the job. It starts in its own session,
so a signal to its process group also ends `accelerate launch`'s workers. Kept apart from the job queue
(`training_worker.py`), which decides when a child starts and what its exit means.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil

from webui.training.config import TrainingConfig

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The files of a job folder: what the child reads, writes, and watches for.
CONFIG_FILE, EVENTS_FILE, STOP_FILE, LOG_FILE = "config.json", "events.jsonl", "cancel", "log.txt"


class ChildProcess:
    """A running child: a Popen we started, or (after an app restart) a pid we found still running."""

    def __init__(self, popen: subprocess.Popen | None = None, pid: int | None = None):
        self.popen = popen
        self.pid = popen.pid if popen is not None else int(pid or 0)

    def poll(self) -> int | None:
        if self.popen is not None:
            return self.popen.poll()
        return None if _pid_alive(self.pid) else -1

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(os.getpgid(self.pid), signum)
        except (ProcessLookupError, PermissionError):
            pass


def start_child(args: Sequence[str], work_dir: Path, threads: int) -> ChildProcess:
    """Start `args` in the job folder, output appended to its log, in a new session. Raises OSError, or
    ValueError for arguments Popen refuses (a NUL character)."""
    with open(work_dir / LOG_FILE, "ab") as log_file:
        popen = subprocess.Popen(list(args), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=str(work_dir), env=child_environment(threads), start_new_session=True)
    return ChildProcess(popen)


def train_command(config: TrainingConfig, work_dir: Path, *, python: str, data_dir: Path, threads: int,
                  resume: bool = False) -> list[str]:
    """The exact command line of a job (shown in the job view; users may run it themselves)."""
    train = ["-m", "webui.train", str(work_dir / CONFIG_FILE), "--data-dir", str(data_dir),
             "--work-dir", str(work_dir), "--events", str(work_dir / EVENTS_FILE), "--stop-file",
             str(work_dir / STOP_FILE), "--threads", str(threads), "--quiet"]
    if resume:
        train += ["--resume", "latest"]
    if config.num_processes <= 1:
        return [python, *train]
    # `--multi_gpu` is accelerate's torchrun launcher; it starts N processes on the CPU too (the trainer then
    # uses gloo). `--cpu` would start a single process: accelerate's multi-CPU mode needs mpirun.
    launch = [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
              str(config.num_processes), "--num_machines", "1", "--dynamo_backend", "no",
              "--mixed_precision", "no", "--main_process_port", str(_free_port()),
              "--num_cpu_threads_per_process", str(threads)]
    return [*launch, "--module", *train[1:]]


def child_environment(threads: int) -> dict[str, str]:
    """The app's environment plus the project on PYTHONPATH, explicit thread counts, and no network lookups."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    count = str(threads)
    env.update(OMP_NUM_THREADS=count, MKL_NUM_THREADS=count, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    return env


def is_our_child(pid: int | None, work_dir: str) -> bool:
    """The pid still runs *this* job (pids are reused after a reboot)."""
    if not _pid_alive(pid):
        return False
    try:
        return work_dir in " ".join(psutil.Process(pid).cmdline())
    except Exception:  # noqa: BLE001 - psutil errors: treat as gone
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except (ImportError, OSError, ValueError):
        return False
    except Exception:  # noqa: BLE001 - psutil.Error subclasses (NoSuchProcess, AccessDenied)
        return False


def absolute_paths(config: TrainingConfig) -> TrainingConfig:
    """The child runs in its job folder: every path in the config must not depend on the app's working dir."""
    def absolute(value: str) -> str:
        return str(Path(value).expanduser().resolve()) if value else value

    subsets = tuple(dataclasses.replace(s, path=absolute(s.path)) for s in config.subsets)
    return dataclasses.replace(config, base_model=absolute(config.base_model), dataset_dir=absolute(config.dataset_dir),
                               output_dir=absolute(config.output_dir), sample_prompts=absolute(config.sample_prompts),
                               subsets=subsets)
