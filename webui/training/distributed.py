"""Data-parallel training across processes started by `accelerate launch` / torchrun (RANK, WORLD_SIZE set).

Why our own few lines instead of `Accelerator.prepare`: the trainer owns its batch order (deterministic per epoch,
for exact resume), so the only things needed are: each rank takes every world-th batch, gradients are averaged
before the optimizer step, decisions (stop) are agreed on by all ranks, and only rank 0 writes files. On the CPU
the backend is gloo, on CUDA nccl. A single process (no WORLD_SIZE) does none of this.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: torch.device) -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return cls(dist.get_rank(), dist.get_world_size(), str(device))

    def shard(self, batches: Sequence[list[int]]) -> list[list[int]]:
        """This rank's batches: every world-th one; short ranks wrap around so all ranks step together."""
        if not self.enabled:
            return list(batches)
        count = -(-len(batches) // self.world)
        return [batches[(i * self.world + self.rank) % len(batches)] for i in range(count)]

    def steps_per_epoch(self, batches: int) -> int:
        return -(-batches // self.world)

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        for param in params:
            if param.grad is not None:
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad.div_(self.world)

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor.item() / self.world)

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (a stop request must stop all ranks at the same step)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        tensor = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()
