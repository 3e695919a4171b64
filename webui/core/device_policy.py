"""How generation and training share one device: the user's policy turned into a decision per generation job.

Why a policy and not one rule: training runs in its own process and holds its own copy of the base model, while the
app keeps the generation model loaded. On one GPU both copies plus training activations may not fit, and two
processes that each assume the memory is theirs fail at random with out-of-memory. Users differ in what they want:
keep generating while a LoRA trains (the generation model then lives in RAM between generations), never disturb
training (generation waits), or they know both fit (keep both). Whatever happens, the user is told (`notice`).

Pure: device names are strings ("cpu", "cuda", "cuda:1", "mps"); the caller supplies the running jobs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OFFLOAD = "Move the generation model to RAM while training"
WAIT = "Generation waits until training ends"
SHARE = "Keep both on the device"
POLICIES = (OFFLOAD, WAIT, SHARE)
DEFAULT_POLICY = OFFLOAD


@dataclass(frozen=True)
class RunningTraining:
    """A training job that is running now: its name, progress and the device its config names."""

    job_id: str
    name: str
    device: str
    step: int = 0
    total_steps: int = 0
    processes: int = 1


@dataclass(frozen=True)
class SharePlan:
    """What to do around one generation job.

    park: keep the generation model in RAM whenever it is not generating (before training gets the device back);
    wait: hold the generation job until no training job uses the device;
    notice: the line the user sees in the result (None when nothing is shared).
    """

    park: bool
    wait: bool
    notice: str | None
    jobs: tuple[RunningTraining, ...] = ()


def _split(device: str) -> tuple[str, int | None]:
    kind, _, index = device.strip().lower().partition(":")
    return kind, int(index) if index.isdigit() else None


def shares_device(generation_device: str, job: RunningTraining) -> bool:
    """True when `job` may use the memory or cores the generation device uses.

    Same kind and same index (a missing index means device 0, as torch does) share; a multi-process job
    (`accelerate launch` over several GPUs) uses every device of its kind, so it shares with any of them.
    CPU jobs share the CPU with CPU generation (cores, not VRAM)."""
    gen_kind, gen_index = _split(generation_device)
    job_kind, job_index = _split(job.device)
    if gen_kind != job_kind:
        return False
    if gen_kind == "cpu" or job.processes > 1:
        return True
    return (gen_index or 0) == (job_index or 0)


def _describe(jobs: Sequence[RunningTraining]) -> str:
    parts = [f"'{job.name}' (step {job.step}/{job.total_steps})" if job.total_steps else f"'{job.name}'"
             for job in jobs]
    return "training job " + ", ".join(parts) if len(parts) == 1 else "training jobs " + ", ".join(parts)


def plan_sharing(policy: str, generation_device: str, running: Sequence[RunningTraining]) -> SharePlan:
    """The decision for a generation job on `generation_device` while `running` jobs train.

    An unknown policy (a hand-edited config.json) falls back to the default rather than failing a generation."""
    if policy not in POLICIES:
        policy = DEFAULT_POLICY
    jobs = tuple(job for job in running if shares_device(generation_device, job))
    if not jobs:
        return SharePlan(park=False, wait=False, notice=None)
    what = _describe(jobs)
    if _split(generation_device)[0] == "cpu":
        return SharePlan(park=False, wait=policy == WAIT, jobs=jobs,
                         notice=f"A {what} is running on the CPU too: both share its cores, so this generation "
                                f"and the training run slower.")
    if policy == WAIT:
        return SharePlan(park=True, wait=True, jobs=jobs,
                         notice=f"Waited for the {what} on {generation_device} to end before generating "
                                f"(Settings > Training: '{WAIT}').")
    if policy == SHARE:
        return SharePlan(park=False, wait=False, jobs=jobs,
                         notice=f"A {what} is using {generation_device}: the generation model stays on the device "
                                f"as well, both share its memory (an out-of-memory error in either is possible).")
    return SharePlan(park=True, wait=False, jobs=jobs,
                     notice=f"A {what} is using {generation_device}: the generation model was moved onto the "
                            f"device for this generation and back to RAM afterwards.")
