"""A checkpoint's network sizes from its tensor shapes: the diffusers config fields a single file implies.

Why: fine-tunes ship with unusual widths, depths and text encoders, and the original LDM yaml is rarely at hand.
Every size a diffusers config needs is in the shapes, so `infer_architecture(shapes, family)` reads them and returns
per-component overrides (`unet`, `vae`, `text_encoder`, `text_encoder_2`) to apply on top of the family's shipped
config, ComfyUI style. Which family a file is comes first, from its key names (`detection.py`); this module only
measures, per family, what the shapes say (`FAMILY_LAYOUTS` holds the few facts shapes cannot tell).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from webui.core.errors import ModelLoadError
from webui.engine.models.detection import SD1, SD2, SDXL, SDXL_REFINER, UNET_PREFIX, VAE_PREFIX

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class TextEncoderSlot:
    """Where a family keeps one text encoder: diffusers component name, key prefix, layout.

    `layout` is "hf" (transformers' CLIPTextModel embedded as is) or "openclip" (OpenCLIP's own names).
    `unused_last_layers`: SD2 conditions on OpenCLIP's penultimate layer, so diffusers' SD2 text encoder has one
    layer fewer than the file holds (23 of 24); the last block is dead weight.
    """

    component: str
    prefix: str
    layout: str
    unused_last_layers: int = 0


@dataclass(frozen=True)
class FamilyLayout:
    """Per-family facts that shapes cannot tell.

    `fixed_heads`: SD1's UNet uses 8 heads everywhere; the others use 64-channel heads (`None` here).
    `time_ids`: how many size/crop/score numbers SDXL adds to the pooled text embedding (6 base, 5 refiner);
    each is embedded with `addition_time_embed_dim` sinusoidal features.
    """

    text_encoders: tuple[TextEncoderSlot, ...]
    fixed_heads: int | None
    time_ids: int | None = None


FAMILY_LAYOUTS: dict[str, FamilyLayout] = {
    SD1: FamilyLayout((TextEncoderSlot("text_encoder", "cond_stage_model.transformer.text_model.", "hf"),), 8),
    SD2: FamilyLayout((TextEncoderSlot("text_encoder", "cond_stage_model.model.", "openclip", 1),), None),
    SDXL: FamilyLayout(
        (
            TextEncoderSlot("text_encoder", "conditioner.embedders.0.transformer.text_model.", "hf"),
            TextEncoderSlot("text_encoder_2", "conditioner.embedders.1.model.", "openclip"),
        ),
        None,
        time_ids=6,
    ),
    SDXL_REFINER: FamilyLayout(
        (TextEncoderSlot("text_encoder_2", "conditioner.embedders.0.model.", "openclip"),), None, time_ids=5
    ),
}

HEAD_CHANNELS = 64


def _strip(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    """The entries under `prefix`, with the prefix removed."""
    return {k[len(prefix):]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}


def _indices(shapes: Shapes, prefix: str) -> list[int]:
    """Sorted integers N such that some key starts with `prefix + "N."`."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in shapes if (m := pattern.match(k))})


def _shape(shapes: Shapes, key: str, what: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ModelLoadError(f"The {what} is missing tensor '{key}'; the file is incomplete or of an unknown layout.")
    return shapes[key]


# --- UNet ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    """One resolution level of the LDM UNet's input side: its resblocks' channels and transformer depths."""

    channels: tuple[int, ...]
    depths: tuple[int, ...]


def _unet_levels(u: Shapes) -> list[_Level]:
    """Walk `input_blocks.N`: a block with `0.op` is a downsampler (level boundary), others are resblocks that may
    carry a SpatialTransformer at index 1 whose `transformer_blocks.M` count is the depth."""
    levels: list[_Level] = []
    channels: list[int] = []
    depths: list[int] = []
    for index in _indices(u, "input_blocks.")[1:]:
        if f"input_blocks.{index}.0.op.weight" in u:
            levels.append(_Level(tuple(channels), tuple(depths)))
            channels, depths = [], []
            continue
        channels.append(_shape(u, f"input_blocks.{index}.0.in_layers.2.weight", "UNet")[0])
        depths.append(len(_indices(u, f"input_blocks.{index}.1.transformer_blocks.")))
    levels.append(_Level(tuple(channels), tuple(depths)))
    return levels


def _check_uniform(levels: list[_Level]) -> int:
    """diffusers needs one layers-per-block count and per-level uniform width/depth; return the count."""
    counts = {len(level.channels) for level in levels}
    if len(counts) != 1 or 0 in counts:
        raise ModelLoadError(f"Unsupported UNet layout: levels have {sorted(counts)} resblocks.")
    for level in levels:
        if len(set(level.channels)) != 1 or len(set(level.depths)) != 1:
            raise ModelLoadError("Unsupported UNet layout: a level mixes widths or attention depths.")
    return counts.pop()


def _transformer_layers(levels: list[_Level], mid_depth: int) -> int | list[int]:
    """Depth per down level; levels without attention get a placeholder (diffusers ignores it there).

    diffusers' mid block takes the last entry, so a last level without attention carries the mid depth.
    """
    depths = [level.depths[0] or 1 for level in levels]
    if levels[-1].depths[0] == 0:
        depths[-1] = mid_depth or 1
    elif mid_depth and mid_depth != depths[-1]:
        raise ModelLoadError("Unsupported UNet layout: the middle block's depth differs from the last level's.")
    return depths[0] if len(set(depths)) == 1 else depths


def _first_attention_prefix(u: Shapes) -> str | None:
    for index in _indices(u, "input_blocks."):
        if f"input_blocks.{index}.1.proj_in.weight" in u:
            return f"input_blocks.{index}.1."
    return "middle_block.1." if "middle_block.1.proj_in.weight" in u else None


def _attention_config(u: Shapes, channels: list[int], layout: FamilyLayout) -> dict[str, object]:
    """cross_attention_dim, projection kind (linear in SD2/SDXL, 1x1 conv in SD1) and heads per block."""
    prefix = _first_attention_prefix(u)
    if prefix is None:
        return {}
    config: dict[str, object] = {
        "cross_attention_dim": _shape(u, prefix + "transformer_blocks.0.attn2.to_k.weight", "UNet")[1],
        "use_linear_projection": len(_shape(u, prefix + "proj_in.weight", "UNet")) == 2,
    }
    if layout.fixed_heads is not None:
        config["attention_head_dim"] = layout.fixed_heads
    else:
        config["attention_head_dim"] = [max(1, c // HEAD_CHANNELS) for c in channels]
    return config


def _addition_embedding(u: Shapes, layout: FamilyLayout, pooled_dim: int | None) -> dict[str, object]:
    """SDXL's `label_emb` input = pooled text embedding + `time_ids` sinusoidal embeddings of equal width.

    The width is not stored anywhere, but it is what is left of the input width after the pooled part, divided
    by the number of time ids: (2816 - 1280) / 6 = 256 for SDXL base.
    """
    if layout.time_ids is None or "label_emb.0.0.weight" not in u:
        return {}
    adm_in = _shape(u, "label_emb.0.0.weight", "UNet")[1]
    if pooled_dim is None or (adm_in - pooled_dim) <= 0 or (adm_in - pooled_dim) % layout.time_ids:
        raise ModelLoadError(f"Cannot split the SDXL size-conditioning input of width {adm_in}.")
    return {
        "projection_class_embeddings_input_dim": adm_in,
        "addition_time_embed_dim": (adm_in - pooled_dim) // layout.time_ids,
    }


def infer_unet_config(unet_shapes: Shapes, family: str, pooled_dim: int | None = None) -> dict[str, object]:
    """UNet2DConditionModel config fields from LDM `model.diffusion_model.*` shapes (prefix already removed)."""
    layout = FAMILY_LAYOUTS[family]
    u = unet_shapes
    conv_in = _shape(u, "input_blocks.0.0.weight", "UNet")
    levels = _unet_levels(u)
    layers_per_block = _check_uniform(levels)
    channels = [level.channels[0] for level in levels]
    has_attention = [level.depths[0] > 0 for level in levels]
    mid_depth = len(_indices(u, "middle_block.1.transformer_blocks."))
    config: dict[str, object] = {
        "in_channels": conv_in[1],
        "out_channels": _shape(u, "out.2.weight", "UNet")[0],
        "block_out_channels": channels,
        "layers_per_block": layers_per_block,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(has_attention)],
        "transformer_layers_per_block": _transformer_layers(levels, mid_depth),
    }
    config.update(_attention_config(u, channels, layout))
    config.update(_addition_embedding(u, layout, pooled_dim))
    return config


# --- VAE ----------------------------------------------------------------------------------------------------------

# (down-level prefix, resblock container) in LDM and in diffusers naming; standalone VAE files come in both.
_VAE_LAYOUTS = (("encoder.down.", ".block."), ("encoder.down_blocks.", ".resnets."))


def infer_vae_config(vae_shapes: Shapes) -> dict[str, object]:
    """AutoencoderKL config fields from VAE shapes (without `first_stage_model.`), LDM or diffusers names."""
    v = vae_shapes
    layout = next(((down, block) for down, block in _VAE_LAYOUTS if _indices(v, down)), None)
    if layout is None:
        raise ModelLoadError("The VAE has no encoder down blocks; the file is incomplete or of an unknown layout.")
    down, block = layout
    levels = _indices(v, down)
    channels = [_shape(v, f"{down}{i}{block}0.conv2.weight", "VAE")[0] for i in levels]
    return {
        "in_channels": _shape(v, "encoder.conv_in.weight", "VAE")[1],
        "out_channels": _shape(v, "decoder.conv_out.weight", "VAE")[0],
        "latent_channels": _shape(v, "encoder.conv_out.weight", "VAE")[0] // 2,  # mean and log-variance
        "block_out_channels": channels,
        "layers_per_block": len(_indices(v, f"{down}0{block}")),
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
    }


# --- Text encoders ------------------------------------------------------------------------------------------------


def _text_config(hidden: int, vocab: int, positions: int, layers: int, intermediate: int) -> dict[str, object]:
    return {
        "hidden_size": hidden,
        "vocab_size": vocab,
        "max_position_embeddings": positions,
        "num_hidden_layers": layers,
        "intermediate_size": intermediate,
        "num_attention_heads": max(1, hidden // HEAD_CHANNELS),
    }


def infer_hf_clip_config(t: Shapes) -> dict[str, object]:
    """CLIPTextModel fields from transformers-named keys (under `...text_model.`)."""
    vocab, hidden = _shape(t, "embeddings.token_embedding.weight", "text encoder")
    config = _text_config(
        hidden, vocab,
        _shape(t, "embeddings.position_embedding.weight", "text encoder")[0],
        len(_indices(t, "encoder.layers.")),
        _shape(t, "encoder.layers.0.mlp.fc1.weight", "text encoder")[0],
    )
    config["projection_dim"] = hidden  # CLIP-L's published value; CLIPTextModel has no projection layer anyway
    return config


def infer_open_clip_config(t: Shapes, unused_last_layers: int = 0) -> dict[str, object]:
    """CLIPTextModel[WithProjection] fields from OpenCLIP-named keys; `text_projection` is [hidden, projection]."""
    vocab, hidden = _shape(t, "token_embedding.weight", "text encoder")
    config = _text_config(
        hidden, vocab,
        _shape(t, "positional_embedding", "text encoder")[0],
        len(_indices(t, "transformer.resblocks.")) - unused_last_layers,
        _shape(t, "transformer.resblocks.0.mlp.c_fc.weight", "text encoder")[0],
    )
    if config["num_hidden_layers"] < 1:
        raise ModelLoadError("The OpenCLIP text encoder has too few layers.")
    if "text_projection" in t and unused_last_layers == 0:
        config["projection_dim"] = _shape(t, "text_projection", "text encoder")[1]
    return config


def _infer_text_encoder(shapes: Shapes, slot: TextEncoderSlot) -> dict[str, object]:
    sub = _strip(shapes, slot.prefix)
    if not sub:
        raise ModelLoadError(f"The checkpoint has no text encoder under '{slot.prefix}'.")
    if slot.layout == "hf":
        return infer_hf_clip_config(sub)
    return infer_open_clip_config(sub, slot.unused_last_layers)


# --- Whole checkpoint ---------------------------------------------------------------------------------------------


def infer_architecture(state_dict_shapes: Shapes, family: str) -> dict[str, dict[str, object]]:
    """Per-component diffusers config overrides read from a single-file checkpoint's shapes.

    Returns `{"unet": {...}, "vae": {...}, "text_encoder": {...}[, "text_encoder_2": {...}]}`; fields shapes
    cannot tell (activation, norm groups, sample size, upcasting) stay with the family's shipped config.
    """
    if family not in FAMILY_LAYOUTS:
        raise ModelLoadError(f"Unknown model family '{family}'.")
    layout = FAMILY_LAYOUTS[family]
    result = {slot.component: _infer_text_encoder(state_dict_shapes, slot) for slot in layout.text_encoders}
    pooled = result.get("text_encoder_2", {}).get("projection_dim")
    unet_shapes = _strip(state_dict_shapes, UNET_PREFIX)
    if not unet_shapes:
        raise ModelLoadError("The checkpoint has no UNet (model.diffusion_model.*).")
    result["unet"] = infer_unet_config(unet_shapes, family, pooled if isinstance(pooled, int) else None)
    vae_shapes = _strip(state_dict_shapes, VAE_PREFIX)
    if vae_shapes:
        result["vae"] = infer_vae_config(vae_shapes)
    return dict(sorted(result.items()))
