"""LoRA / LyCORIS file layouts as data, and the weight delta each one stands for.

Why a table: kohya LoRA/LoCon, LyCORIS LoHa/LoKr, full diffs, diffusers/PEFT and SimpleTuner's `lycoris_` keys
all reach the same result (a delta per weight); which tensors a module carries decides the format, and the table
below is the only place that knows the suffixes. The math comes from `lycoris.functional` (maintained, tested
against LyCORIS' own modules); nothing here touches a model.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from lycoris.functional import locon, loha, lokr

from webui.core.errors import ModelLoadError


@dataclass(frozen=True)
class AdapterFormat:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


# Parameter suffixes per format; the module name is the key without the suffix.
FORMATS: tuple[AdapterFormat, ...] = (
    AdapterFormat("lora", ("lora_down.weight", "lora_up.weight"), ("lora_mid.weight", "alpha")),
    AdapterFormat("loha", ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"), ("hada_t1", "hada_t2", "alpha")),
    AdapterFormat("lokr", (), ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
                               "alpha")),
    AdapterFormat("full", ("diff",), ("diff_b",)),
    AdapterFormat("peft", ("lora_A.weight", "lora_B.weight"), ("alpha",)),
    AdapterFormat("diffusers", ("lora.down.weight", "lora.up.weight"), ("alpha",)),
    # XLabs' Flux LoRAs (`double_blocks.0.processor.qkv_lora1.down.weight`): no alpha, scale 1.
    AdapterFormat("xlabs", ("down.weight", "up.weight")),
)
# The down / up tensor of the low-rank formats, kohya's first.
_DOWN_KEYS = ("lora_down.weight", "lora_A.weight", "lora.down.weight", "down.weight")
_UP_KEYS = ("lora_up.weight", "lora_B.weight", "lora.up.weight", "up.weight")
_SUFFIXES = sorted({s for f in FORMATS for s in (*f.required, *f.optional)}, key=len, reverse=True)
IGNORED_SUFFIXES = ("dora_scale", "scale", "on_input", "w_norm", "b_norm")


@dataclass(frozen=True)
class ModuleAdapter:
    """The tensors one adapter file holds for one target module."""

    module: str
    fmt: str
    tensors: Mapping[str, torch.Tensor]

    def output_input(self) -> tuple[int, int]:
        """(output rows, elements per output row) of the delta, from the tensor shapes alone (no math), so a
        file for another architecture is refused before any weight changes."""
        t = self.tensors
        if self.fmt in ("lora", "peft", "diffusers", "xlabs"):
            down = next(t[k] for k in _DOWN_KEYS if k in t)
            up = next(t[k] for k in _UP_KEYS if k in t)
            mid = t.get("lora_mid.weight")
            kernel = mid.shape[2:] if mid is not None else down.shape[2:]
            return up.shape[0], down.shape[1] * torch.Size(kernel).numel()
        if self.fmt == "loha":
            kernel = t["hada_w1_b"].shape[2:] if "hada_t1" not in t else t["hada_t1"].shape[2:]
            in_dim = t["hada_w1_b"].shape[1] if "hada_t1" not in t else t["hada_w1_b"].shape[1]
            return t["hada_w1_a"].shape[0], in_dim * torch.Size(kernel).numel()
        if self.fmt == "lokr":
            w1 = (t["lokr_w1"].shape if "lokr_w1" in t else (t["lokr_w1_a"].shape[0], t["lokr_w1_b"].shape[1]))
            if "lokr_w2" in t:
                w2 = t["lokr_w2"].shape
            else:
                w2 = (t["lokr_w2_a"].shape[0], *t["lokr_w2_b"].shape[1:])
            return w1[0] * w2[0], w1[1] * torch.Size(w2[1:]).numel()
        diff = t["diff"]
        return diff.shape[0], diff[0].numel()

    def fits(self, shape: torch.Size) -> bool:
        out, per_row = self.output_input()
        return out == shape[0] and out * per_row == torch.Size(shape).numel()

    def delta(self, shape: torch.Size) -> torch.Tensor:
        """The weight delta at multiplier 1, in float32, shaped like the target weight."""
        t = {k: v.to(torch.float32) for k, v in self.tensors.items()}
        delta = _DELTAS[self.fmt](t)
        if delta.numel() != torch.Size(shape).numel():
            raise ModelLoadError(f"Adapter weights for {self.module} have shape {tuple(delta.shape)}, the model's "
                                 f"weight is {tuple(shape)} (a file for another model?).")
        return delta.reshape(shape)


def _alpha_scale(t: dict[str, torch.Tensor], rank: int) -> float:
    alpha = t.get("alpha")
    return float(alpha) / rank if alpha is not None else 1.0


def _lora_delta(t: dict[str, torch.Tensor]) -> torch.Tensor:
    down, up = t["lora_down.weight"], t["lora_up.weight"]
    return locon.diff_weight(down, up, t.get("lora_mid.weight"), gamma=_alpha_scale(t, down.shape[0]))


def _peft_delta(t: dict[str, torch.Tensor]) -> torch.Tensor:
    down = next(t[k] for k in _DOWN_KEYS[1:] if k in t)
    up = next(t[k] for k in _UP_KEYS[1:] if k in t)
    return locon.diff_weight(down, up, None, gamma=_alpha_scale(t, down.shape[0]))


def _loha_delta(t: dict[str, torch.Tensor]) -> torch.Tensor:
    rank = t["hada_w1_b"].shape[0]
    return loha.diff_weight(t["hada_w1_b"], t["hada_w1_a"], t["hada_w2_b"], t["hada_w2_a"], t.get("hada_t1"),
                            t.get("hada_t2"), gamma=_alpha_scale(t, rank))


def _lokr_delta(t: dict[str, torch.Tensor]) -> torch.Tensor:
    w1a, w2a = t.get("lokr_w1_a"), t.get("lokr_w2_a")
    decomposed = w1a is not None or w2a is not None
    rank = (w1a if w1a is not None else w2a).shape[1] if decomposed else 1
    alpha = float(t["alpha"]) if "alpha" in t and decomposed else float(rank)
    return lokr.diff_weight(t.get("lokr_w1"), w1a, t.get("lokr_w1_b"), t.get("lokr_w2"), w2a, t.get("lokr_w2_b"),
                            t.get("lokr_t2"), gamma=alpha)


def _full_delta(t: dict[str, torch.Tensor]) -> torch.Tensor:
    return t["diff"]


_DELTAS: dict[str, Callable[[dict[str, torch.Tensor]], torch.Tensor]] = {
    "lora": _lora_delta, "loha": _loha_delta, "lokr": _lokr_delta, "full": _full_delta,
    "peft": _peft_delta, "diffusers": _peft_delta, "xlabs": _peft_delta,
}


def _split_key(key: str) -> tuple[str, str] | None:
    for suffix in _SUFFIXES:
        if key.endswith("." + suffix):
            return key[: -len(suffix) - 1], suffix
    return None


def _format_of(suffixes: set[str]) -> str | None:
    for fmt in FORMATS:
        if fmt.name == "lokr":
            if {"lokr_w1", "lokr_w1_a"} & suffixes and {"lokr_w2", "lokr_w2_a"} & suffixes:
                return "lokr"
        elif set(fmt.required) <= suffixes:
            return fmt.name
    return None


def group_by_module(state_dict: Mapping[str, torch.Tensor]) -> tuple[list[ModuleAdapter], list[str]]:
    """Split an adapter file into per-module adapters; returns them and the keys nothing understood."""
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, tensor in state_dict.items():
        split = _split_key(key)
        if split is None:
            if not key.endswith(IGNORED_SUFFIXES):
                unknown.append(key)
            continue
        grouped.setdefault(split[0], {})[split[1]] = tensor
    adapters = []
    for module, tensors in grouped.items():
        fmt = _format_of(set(tensors))
        if fmt is None:
            unknown.extend(f"{module}.{suffix}" for suffix in tensors)
            continue
        adapters.append(ModuleAdapter(module, fmt, tensors))
    return adapters, unknown
