"""Optimizers and learning-rate schedules by the names users know from kohya / SimpleTuner.

Why a table: the UI offers names; each maps to a factory that either builds the optimizer or raises a
`ValidationError` naming the package to install (AdamW8bit needs bitsandbytes, Lion lion-pytorch or torch-optimi,
Prodigy prodigyopt). StableAdamW is implemented here (AdamW with per-tensor update clipping, Wortsman et al.
2023), so it needs no extra package.
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from webui.core.errors import ValidationError
from webui.training.config import TrainingConfig

ParamGroups = Sequence[dict[str, Any]]


class StableAdamW(torch.optim.Optimizer):
    """AdamW whose step size is divided by max(1, RMS(g^2 / v)) per tensor: a large gradient relative to the
    second-moment estimate (a loss spike) cannot blow the weights up. Decoupled weight decay."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-6,
                 weight_decay: float = 1e-2):
        if lr <= 0:
            raise ValueError(f"Invalid learning rate {lr}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group, beta1, beta2)
        return loss

    def _update(self, param: torch.Tensor, group: dict[str, Any], beta1: float, beta2: float) -> None:
        grad = param.grad.float()
        state = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(grad)
            state["exp_avg_sq"] = torch.zeros_like(grad)
        state["step"] += 1
        step = float(state["step"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        second = exp_avg_sq / (1 - beta2 ** step)
        rms = (grad.square() / second.clamp_min(group["eps"] ** 2)).mean().sqrt()
        lr = group["lr"] / torch.clamp(rms, min=1.0)
        param.mul_(1 - lr * group["weight_decay"])
        update = (exp_avg / (1 - beta1 ** step)) / (second.sqrt() + group["eps"])
        param.add_((-lr * update).to(param.dtype))


def _import(options: Sequence[tuple[str, str]], optimizer: str, install: str) -> Any:
    """The first importable `module.attribute` of `options`, else a clear error naming what to install."""
    for module_name, attribute in options:
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except ImportError:
            continue
    raise ValidationError(f"The {optimizer} optimizer needs the '{install}' package, which is not installed "
                          f"(pip install {install}); choose AdamW or StableAdamW otherwise.")


def _adamw(groups: ParamGroups, config: TrainingConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay, foreach=False)


def _adamw8bit(groups: ParamGroups, config: TrainingConfig) -> torch.optim.Optimizer:
    cls = _import((("bitsandbytes.optim", "AdamW8bit"),), "AdamW8bit", "bitsandbytes")
    return cls(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def _lion(groups: ParamGroups, config: TrainingConfig) -> torch.optim.Optimizer:
    cls = _import((("lion_pytorch", "Lion"), ("optimi", "Lion")), "Lion", "lion-pytorch")
    return cls(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def _prodigy(groups: ParamGroups, config: TrainingConfig) -> torch.optim.Optimizer:
    cls = _import((("prodigyopt", "Prodigy"),), "Prodigy", "prodigyopt")
    return cls(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def _stable_adamw(groups: ParamGroups, config: TrainingConfig) -> torch.optim.Optimizer:
    return StableAdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


OPTIMIZER_FACTORIES: dict[str, Callable[[ParamGroups, TrainingConfig], torch.optim.Optimizer]] = {
    "AdamW": _adamw, "AdamW8bit": _adamw8bit, "Lion": _lion, "Prodigy": _prodigy, "StableAdamW": _stable_adamw,
}


def create_optimizer(groups: ParamGroups, config: TrainingConfig) -> torch.optim.Optimizer:
    factory = OPTIMIZER_FACTORIES.get(config.optimizer)
    if factory is None:
        raise ValidationError(f"Unknown optimizer '{config.optimizer}'. Known: {', '.join(OPTIMIZER_FACTORIES)}.")
    # The "name" key labels groups for us; optimizers ignore unknown keys, but copy to keep the caller's dicts.
    return factory([dict(group) for group in groups], config)


def create_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int):
    """diffusers' schedules (constant, constant_with_warmup, cosine, cosine_with_restarts, linear, polynomial)."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
                         num_training_steps=max(1, total_steps), num_cycles=config.lr_scheduler_num_cycles,
                         power=config.lr_scheduler_power)


# ------------------------------------------------------------------------------------------------------------------
# Mixed precision
# ------------------------------------------------------------------------------------------------------------------


def autocast_dtype(mixed_precision: str, device: torch.device) -> tuple[torch.dtype | None, str | None]:
    """(autocast dtype or None, a note for the user). fp16 autocast is a CUDA feature; on the CPU it is not
    applied (bf16 is, but it is slower than fp32 on most CPUs)."""
    if mixed_precision == "no":
        return None, None
    if mixed_precision == "fp16":
        if device.type == "cuda":
            return torch.float16, None
        return None, f"Mixed precision fp16 is not applied on {device.type}; training in fp32."
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return None, "This GPU has no bf16 support; training in fp32."
    note = "bf16 autocast on the CPU saves memory but is usually slower than fp32." if device.type == "cpu" else None
    return torch.bfloat16, note


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
