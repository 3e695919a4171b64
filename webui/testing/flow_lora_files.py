"""Write adapter files for the flow transformers (AuraFlow, Flux) in the real on-disk key layouts, random weights.

Why: tests need the layouts users bring without downloading any: for Flux the diffusers/PEFT layout, kohya's
(`lora_unet_` on Black Forest Labs' fused layers, `lora_te1_` for CLIP-L, `lora_te3_` for T5), ai-toolkit's
`diffusion_model.` prefix, ComfyUI's `diffusion_model.` + BFL names, XLabs' `processor.qkv_lora1` layout and a
kohya-named LoKr; for AuraFlow the PEFT layout and SimpleTuner's `lycoris_` LoKr/LoHa. Fused (BFL) layers get
one low-rank pair over the whole fused weight, as the original trainers write it, so a reader must split it to
apply it. The BFL layer names and their row sizes come from the model itself (`flow_layouts.original_layout_names`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from webui.engine.networks.flow_layouts import original_layout_names

FLUX_LAYOUTS = ("diffusers", "kohya", "aitoolkit", "comfy", "xlabs", "kohya_lokr")
AURAFLOW_LAYOUTS = ("peft", "lycoris_lokr", "lycoris_loha")
# Flux layers each layout adapts: diffusers paths, or original (BFL) names.
_FLUX_PATHS = ("transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_v", "transformer_blocks.0.ff.net.2",
               "single_transformer_blocks.0.proj_mlp", "single_transformer_blocks.1.attn.to_k")
_FLUX_BFL = ("double_blocks.0.img_attn.qkv", "double_blocks.0.txt_attn.qkv", "double_blocks.0.img_attn.proj",
             "single_blocks.0.linear1", "single_blocks.1.linear2", "final_layer.adaLN_modulation.1")
_XLABS = ("double_blocks.0.processor.qkv_lora1", "double_blocks.0.processor.qkv_lora2",
          "double_blocks.0.processor.proj_lora1", "double_blocks.0.processor.proj_lora2")
_AURAFLOW_PATHS = ("joint_transformer_blocks.0.attn.to_q", "joint_transformer_blocks.0.attn.add_k_proj",
                   "joint_transformer_blocks.0.ff.linear_1", "single_transformer_blocks.0.attn.to_v",
                   "single_transformer_blocks.1.ff.out_projection")


def _linear(root: torch.nn.Module, path: str) -> torch.nn.Module:
    return dict(root.named_modules())[path]


def _pair(out_dim: int, in_dim: int, rank: int, gen: torch.Generator, scale: float = 0.3) -> tuple[torch.Tensor, ...]:
    return (torch.randn(rank, in_dim, generator=gen) * scale, torch.randn(out_dim, rank, generator=gen) * scale)


def _bfl_shape(transformer: torch.nn.Module, name: str) -> tuple[int, int]:
    """(rows, columns) of an original-layout fused weight."""
    fused = original_layout_names(transformer)[name]
    parts = [_linear(transformer, path).weight for path in fused.paths]
    return sum(p.shape[0] for p in parts), parts[0].shape[1]


def _clip_targets(encoder: torch.nn.Module) -> list[str]:
    return [n for n, m in encoder.named_modules() if isinstance(m, torch.nn.Linear) and n.endswith("q_proj")][:2]


def flux_lora_tensors(pipe, layout: str, *, seed: int = 0, rank: int = 4) -> dict[str, torch.Tensor]:
    """A Flux adapter in `layout` (one of FLUX_LAYOUTS) for `pipe`'s transformer (and CLIP, where the layout has
    text-encoder keys)."""
    gen = torch.Generator().manual_seed(seed)
    transformer, tensors = pipe.transformer, {}
    if layout in ("diffusers", "aitoolkit"):
        prefix = "transformer." if layout == "diffusers" else "diffusion_model."
        for path in _FLUX_PATHS:
            weight = _linear(transformer, path).weight
            down, up = _pair(weight.shape[0], weight.shape[1], rank, gen)
            tensors |= {f"{prefix}{path}.lora_A.weight": down, f"{prefix}{path}.lora_B.weight": up}
    elif layout in ("kohya", "comfy"):
        for name in _FLUX_BFL:
            down, up = _pair(*_bfl_shape(transformer, name), rank, gen)
            if layout == "kohya":
                key = "lora_unet_" + name.replace(".", "_")
                tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                            f"{key}.alpha": torch.tensor(float(rank) / 2)}
            else:
                tensors |= {f"diffusion_model.{name}.lora_A.weight": down, f"diffusion_model.{name}.lora_B.weight": up}
    elif layout == "xlabs":
        for name in _XLABS:
            down, up = _pair(*_bfl_shape(transformer, name), rank, gen)
            tensors |= {f"{name}.down.weight": down, f"{name}.up.weight": up}
    elif layout == "kohya_lokr":
        for name in _FLUX_BFL[:4]:
            rows, cols = _bfl_shape(transformer, name)
            key = "lora_unet_" + name.replace(".", "_")
            tensors |= {f"{key}.lokr_w1": torch.randn(2, 2, generator=gen) * 0.3,
                        f"{key}.lokr_w2": torch.randn(rows // 2, cols // 2, generator=gen) * 0.3}
    else:
        raise ValueError(layout)
    if layout in ("diffusers", "kohya"):
        for path in _clip_targets(pipe.text_encoder):
            weight = _linear(pipe.text_encoder, path).weight
            down, up = _pair(weight.shape[0], weight.shape[1], rank, gen)
            if layout == "kohya":
                key = "lora_te1_text_model_" + path.removeprefix("text_model.").replace(".", "_")
                tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up}
            else:
                tensors |= {f"text_encoder.{path}.lora_A.weight": down, f"text_encoder.{path}.lora_B.weight": up}
    if layout == "kohya":  # sd-scripts names T5-XXL `lora_te3_`
        for path in ("encoder.block.0.layer.0.SelfAttention.q", "encoder.block.1.layer.1.DenseReluDense.wo"):
            weight = _linear(pipe.text_encoder_2, path).weight
            down, up = _pair(weight.shape[0], weight.shape[1], rank, gen)
            key = "lora_te3_" + path.replace(".", "_")
            tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up}
    return {k: v.contiguous() for k, v in tensors.items()}


def auraflow_lora_tensors(pipe, layout: str, *, seed: int = 0, rank: int = 4) -> dict[str, torch.Tensor]:
    """An AuraFlow adapter in `layout` (one of AURAFLOW_LAYOUTS): PEFT `transformer.` keys, or SimpleTuner's
    LyCORIS `lycoris_<path>` LoKr / LoHa."""
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for path in _AURAFLOW_PATHS:
        out_dim, in_dim = _linear(pipe.transformer, path).weight.shape
        key = "lycoris_" + path.replace(".", "_")
        if layout == "peft":
            down, up = _pair(out_dim, in_dim, rank, gen)
            tensors |= {f"transformer.{path}.lora_A.weight": down, f"transformer.{path}.lora_B.weight": up}
        elif layout == "lycoris_lokr":
            tensors |= {f"{key}.lokr_w1": torch.randn(2, 2, generator=gen) * 0.3,
                        f"{key}.lokr_w2": torch.randn(out_dim // 2, in_dim // 2, generator=gen) * 0.3,
                        f"{key}.alpha": torch.tensor(1.0)}
        elif layout == "lycoris_loha":
            r = lambda *shape: torch.randn(*shape, generator=gen) * 0.3  # noqa: E731
            tensors |= {f"{key}.hada_w1_a": r(out_dim, rank), f"{key}.hada_w1_b": r(rank, in_dim),
                        f"{key}.hada_w2_a": r(out_dim, rank), f"{key}.hada_w2_b": r(rank, in_dim),
                        f"{key}.alpha": torch.tensor(float(rank))}
        else:
            raise ValueError(layout)
    return {k: v.contiguous() for k, v in tensors.items()}


def write_flow_lora(path: Path, pipe, layout: str, *, seed: int = 0, metadata: dict[str, str] | None = None) -> Path:
    """Write a Flux (FLUX_LAYOUTS) or AuraFlow (AURAFLOW_LAYOUTS) adapter file for `pipe`."""
    tensors = flux_lora_tensors(pipe, layout, seed=seed) if layout in FLUX_LAYOUTS else \
        auraflow_lora_tensors(pipe, layout, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata or {})
    return path
