"""Flux transformer weights between Black Forest Labs' original layout and diffusers' layout, in both directions.

Why our own table: BFL's `flux1-dev.safetensors` (and ComfyUI/Forge full checkpoints, under
`model.diffusion_model.`) use fused tensors (`img_attn.qkv`, single blocks' `linear1` = q, k, v and the MLP),
while diffusers' `FluxTransformer2DModel` keeps them apart. diffusers ships only the BFL -> diffusers direction,
and with the real model's width (3072) written into it, so it cannot read a smaller or pruned file. Here the split
sizes come from the tensors themselves, and the inverse exists so tests can write tiny files in the real layout.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

BFL_PREFIX = "model.diffusion_model."

# Unfused modules: BFL name -> diffusers name (both for `.weight` and `.bias`, or `.scale` -> `.weight`).
_TOP_LEVEL = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "final_layer.linear": "proj_out",
}
_DOUBLE = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_attn.norm.query_norm": "attn.norm_q",
    "img_attn.norm.key_norm": "attn.norm_k",
    "txt_attn.norm.query_norm": "attn.norm_added_q",
    "txt_attn.norm.key_norm": "attn.norm_added_k",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
}
_SINGLE = {
    "modulation.lin": "norm.linear",
    "norm.query_norm": "attn.norm_q",
    "norm.key_norm": "attn.norm_k",
    "linear2": "proj_out",
}
# Fused BFL tensors -> the diffusers modules they hold, in order.
_DOUBLE_FUSED = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_SINGLE_FUSED = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
_FINAL_NORM = ("final_layer.adaLN_modulation.1", "norm_out.linear")
_BLOCK = re.compile(r"^(double_blocks|single_blocks)\.(\d+)\.(.+)\.(weight|bias|scale)$")
_PARAM_TO_DIFFUSERS = {"scale": "weight"}


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    """BFL's final norm projects to (shift, scale), diffusers' `AdaLayerNormContinuous` to (scale, shift)."""
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def strip_bfl_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The transformer's own keys: `model.diffusion_model.` removed (full checkpoints), other parts dropped."""
    if any(k.startswith(BFL_PREFIX) for k in state):
        return {k[len(BFL_PREFIX):]: v for k, v in state.items() if k.startswith(BFL_PREFIX)}
    return dict(state)


def _single_split(state: Mapping[str, torch.Tensor], index: int) -> tuple[int, int]:
    """(attention width, MLP width) of single block `index`: `modulation.lin` puts out 3 x width (shift, scale,
    gate); linear1's rows are 3 x width (q, k, v) + the MLP width."""
    width = int(state[f"single_blocks.{index}.modulation.lin.weight"].shape[0]) // 3
    rows = int(state[f"single_blocks.{index}.linear1.weight"].shape[0])
    return width, rows - 3 * width


def bfl_to_diffusers(bfl: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a BFL-layout Flux transformer (with or without `model.diffusion_model.`) to diffusers keys.
    Raises `KeyError` naming a key it does not know, so an unknown variant never loads half converted."""
    state = strip_bfl_prefix(bfl)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        module, _, param = key.rpartition(".")
        target_param = _PARAM_TO_DIFFUSERS.get(param, param)
        if module in _TOP_LEVEL:
            out[f"{_TOP_LEVEL[module]}.{target_param}"] = tensor
            continue
        if module == _FINAL_NORM[0]:
            out[f"{_FINAL_NORM[1]}.{param}"] = _swap_halves(tensor)
            continue
        match = _BLOCK.match(key)
        if match is None:
            raise KeyError(f"unknown Flux tensor '{key}'")
        kind, index, rest, param = match.groups()
        target_param = _PARAM_TO_DIFFUSERS.get(param, param)
        if kind == "double_blocks":
            prefix = f"transformer_blocks.{index}."
            if rest in _DOUBLE_FUSED:
                for name, part in zip(_DOUBLE_FUSED[rest], tensor.chunk(3, dim=0), strict=True):
                    out[f"{prefix}{name}.{param}"] = part
            elif rest in _DOUBLE:
                out[f"{prefix}{_DOUBLE[rest]}.{target_param}"] = tensor
            else:
                raise KeyError(f"unknown Flux tensor '{key}'")
            continue
        prefix = f"single_transformer_blocks.{index}."
        if rest == "linear1":
            width, mlp = _single_split(state, int(index))
            for name, part in zip(_SINGLE_FUSED, tensor.split([width, width, width, mlp], dim=0), strict=True):
                out[f"{prefix}{name}.{param}"] = part
        elif rest in _SINGLE:
            out[f"{prefix}{_SINGLE[rest]}.{target_param}"] = tensor
        else:
            raise KeyError(f"unknown Flux tensor '{key}'")
    return out


def _inverse(table: Mapping[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


def _bfl_param(bfl_module: str, param: str) -> str:
    """Norm scales are `.scale` in BFL files."""
    return "scale" if bfl_module.endswith(("query_norm", "key_norm")) else param


def diffusers_to_bfl(state: Mapping[str, torch.Tensor], *, prefix: str = "") -> dict[str, torch.Tensor]:
    """The inverse of `bfl_to_diffusers` (tests write tiny files in the real BFL layout with it)."""
    top, double, single = _inverse(_TOP_LEVEL), _inverse(_DOUBLE), _inverse(_SINGLE)
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    orders: dict[str, tuple[str, ...]] = {}
    for key, tensor in state.items():
        module, _, param = key.rpartition(".")
        if module in top:
            out[f"{top[module]}.{param}"] = tensor
        elif module == _FINAL_NORM[1]:
            out[f"{_FINAL_NORM[0]}.{param}"] = _swap_halves(tensor)
        elif key.startswith("transformer_blocks."):
            _, index, rest = module.split(".", 2)
            fused_name = next((f for f, parts in _DOUBLE_FUSED.items() if rest in parts), None)
            if fused_name is not None:
                target = f"double_blocks.{index}.{fused_name}.{param}"
                fused.setdefault(target, {})[rest] = tensor
                orders[target] = _DOUBLE_FUSED[fused_name]
            else:
                bfl = f"double_blocks.{index}.{double[rest]}"
                out[f"{bfl}.{_bfl_param(bfl, param)}"] = tensor
        elif key.startswith("single_transformer_blocks."):
            _, index, rest = module.split(".", 2)
            if rest in _SINGLE_FUSED:
                target = f"single_blocks.{index}.linear1.{param}"
                fused.setdefault(target, {})[rest] = tensor
                orders[target] = _SINGLE_FUSED
            else:
                bfl = f"single_blocks.{index}.{single[rest]}"
                out[f"{bfl}.{_bfl_param(bfl, param)}"] = tensor
        else:
            raise KeyError(f"unknown diffusers Flux tensor '{key}'")
    for key, parts in fused.items():
        out[key] = torch.cat([parts[name] for name in orders[key]], dim=0)
    return {prefix + k: v for k, v in out.items()}
