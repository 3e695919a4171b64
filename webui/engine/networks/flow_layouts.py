"""The names adapter files give the layers of a flow transformer (AuraFlow, Flux), as data.

Why a table of its own: an SD LoRA names UNet layers one way (kohya `lora_unet_`, PEFT `unet.`), but files for
the flow transformers come from several trainers, each with its own names for the same layer:
- diffusers/PEFT and ai-toolkit: `transformer.<diffusers path>` (ai-toolkit and ComfyUI also `diffusion_model.`);
- SimpleTuner and our Train tab's LyCORIS files: `lycoris_<diffusers path with _>`; OneTrainer `lora_transformer_`;
- kohya (sd-scripts) Flux: `lora_unet_<BFL path with _>`, on Black Forest Labs' original layout, where one fused
  Linear holds what diffusers splits into several (`img_attn.qkv` = to_q, to_k, to_v; a single block's `linear1`
  = to_q, to_k, to_v, proj_mlp) and the final modulation is (shift, scale) where diffusers has (scale, shift);
- XLabs: `double_blocks.N.processor.qkv_lora1` (image q/k/v), `qkv_lora2` (text), `proj_lora1/2`.
A fused name maps to a `FusedName`: the delta a file stores for the fused weight is split by rows onto the
diffusers layers (its rows stack exactly as the fused weight's do), so every adapter format (LoRA, LoKr, LoHa,
full diff) works on BFL names with no per-format conversion. Split widths come from the loaded layers themselves.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from webui.engine.networks.adapter_family import AURAFLOW, FLUX, SD

# Prefixes that name a denoiser layer by its diffusers path (dotted) or by the path with `_` (kohya style).
DOTTED_PREFIXES = ("transformer.", "diffusion_model.", "")
UNDERSCORED_PREFIXES = ("lora_unet_", "lycoris_", "lora_transformer_")

# The adapter family group (`adapter_family.py`) of a pipeline, by its denoiser's class.
DENOISER_FAMILIES: Mapping[str, str] = {"UNet2DConditionModel": SD, "AuraFlowTransformer2DModel": AURAFLOW,
                                        "FluxTransformer2DModel": FLUX}
# kohya's text-encoder prefixes per denoiser class (Flux: CLIP-L is `lora_te1`, T5-XXL `lora_te3`, as sd-scripts
# names them); any other class uses the SD rule in adapters.py.
KOHYA_TEXT_PREFIXES: Mapping[str, Mapping[str, str]] = {
    "FluxTransformer2DModel": {"text_encoder": "lora_te1", "text_encoder_2": "lora_te3"},
    "AuraFlowTransformer2DModel": {"text_encoder": "lora_te"},
}
# ComfyUI's names for Flux's text encoders (`text_encoders.clip_l.transformer.text_model...`).
COMFY_TEXT_PREFIXES: Mapping[str, Mapping[str, str]] = {
    "FluxTransformer2DModel": {"text_encoder": "text_encoders.clip_l.transformer.",
                               "text_encoder_2": "text_encoders.t5xxl.transformer."},
}

# Flux: BFL module -> the diffusers modules its rows hold, in order (blocks: relative to the block).
_FLUX_TOP = {
    "img_in": ("x_embedder",), "txt_in": ("context_embedder",),
    "time_in.in_layer": ("time_text_embed.timestep_embedder.linear_1",),
    "time_in.out_layer": ("time_text_embed.timestep_embedder.linear_2",),
    "vector_in.in_layer": ("time_text_embed.text_embedder.linear_1",),
    "vector_in.out_layer": ("time_text_embed.text_embedder.linear_2",),
    "guidance_in.in_layer": ("time_text_embed.guidance_embedder.linear_1",),
    "guidance_in.out_layer": ("time_text_embed.guidance_embedder.linear_2",),
    "final_layer.linear": ("proj_out",),
}
_FLUX_FINAL_NORM = ("final_layer.adaLN_modulation.1", "norm_out.linear")  # rows (shift, scale) vs (scale, shift)
_FLUX_DOUBLE = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "img_attn.proj": ("attn.to_out.0",), "txt_attn.proj": ("attn.to_add_out",),
    "img_mlp.0": ("ff.net.0.proj",), "img_mlp.2": ("ff.net.2",),
    "txt_mlp.0": ("ff_context.net.0.proj",), "txt_mlp.2": ("ff_context.net.2",),
    "img_mod.lin": ("norm1.linear",), "txt_mod.lin": ("norm1_context.linear",),
    # XLabs' processor LoRAs on the same layers
    "processor.qkv_lora1": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "processor.qkv_lora2": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "processor.proj_lora1": ("attn.to_out.0",), "processor.proj_lora2": ("attn.to_add_out",),
}
_FLUX_SINGLE = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation.lin": ("norm.linear",),
    "processor.qkv_lora": ("attn.to_q", "attn.to_k", "attn.to_v"),
}
# Original-layout prefixes: kohya (underscored), ComfyUI / ai-toolkit (`diffusion_model.`), bare (XLabs).
_BFL_DOTTED = ("diffusion_model.", "")
_BFL_UNDERSCORED = ("lora_unet_",)


@dataclass(frozen=True)
class FusedName:
    """A layer name from an original (BFL) layout: the diffusers layer paths its rows hold, in order, and whether
    its two row halves are swapped relative to diffusers (the final modulation)."""

    paths: tuple[str, ...]
    swap_halves: bool = False


def _flux_fused(transformer: torch.nn.Module) -> dict[str, FusedName]:
    """Every original-layout name of this Flux transformer (block counts from its config)."""
    config = transformer.config
    table: dict[str, FusedName] = {bfl: FusedName(paths) for bfl, paths in _FLUX_TOP.items()}
    table[_FLUX_FINAL_NORM[0]] = FusedName((_FLUX_FINAL_NORM[1],), swap_halves=True)
    for index in range(int(config.num_layers)):
        for bfl, paths in _FLUX_DOUBLE.items():
            table[f"double_blocks.{index}.{bfl}"] = FusedName(tuple(f"transformer_blocks.{index}.{p}" for p in paths))
    for index in range(int(config.num_single_layers)):
        for bfl, paths in _FLUX_SINGLE.items():
            table[f"single_blocks.{index}.{bfl}"] = FusedName(
                tuple(f"single_transformer_blocks.{index}.{p}" for p in paths))
    return table


_FUSED_LAYOUTS = {"FluxTransformer2DModel": _flux_fused}


def original_layout_names(transformer: torch.nn.Module) -> dict[str, FusedName]:
    """Every name an adapter file may give a layer of `transformer` in the model's original (non-diffusers)
    layout, with the prefixes the trainers use; empty for a transformer that has none."""
    builder = _FUSED_LAYOUTS.get(type(transformer).__name__)
    if builder is None:
        return {}
    names: dict[str, FusedName] = {}
    for bfl, fused in builder(transformer).items():
        for prefix in _BFL_DOTTED:
            names[prefix + bfl] = fused
        for prefix in _BFL_UNDERSCORED:
            names[prefix + bfl.replace(".", "_")] = fused
    return names


def denoiser_names(path: str) -> list[str]:
    """The names adapter files give the diffusers layer `path` of a transformer denoiser."""
    underscored = path.replace(".", "_")
    return [prefix + path for prefix in DOTTED_PREFIXES] + [prefix + underscored for prefix in UNDERSCORED_PREFIXES]
