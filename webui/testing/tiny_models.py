"""Tiny random Stable Diffusion models (SD1, SD2, SDXL) and writers for them as A1111 single-file checkpoints.

Why: tests and benchmarks must exercise the real loading path (single-file `.safetensors` in LDM layout) on a CPU
without downloads. The models are diffusers-test sized, but keep each family's distinguishing traits so the
family detection and loader see what they would see in a real file:

- SD1: OpenAI CLIP layout (`cond_stage_model.transformer.`), quick_gelu, UNet cross-attention width = text width,
  `attention_head_dim=8` (a head count in diffusers).
- SD2: OpenCLIP layout (`cond_stage_model.model.`), gelu, linear projections in the transformers.
- SDXL: two text encoders of different widths (32 CLIP + 48 OpenCLIP with projection), cross-attention width 80,
  size/crop conditioning (`addition_embed_type="text_time"`).

Head-count rules shared with the loader: text encoder heads = max(1, hidden // 64); SD2/SDXL UNet heads per block =
max(1, channels // 64). Nothing is built at import time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from webui.engine.models.ldm_convert import pipeline_components_to_ldm, vae_to_ldm

FAMILIES = ("sd1", "sd2", "sdxl")
UNET_CHANNELS = (32, 64)
UNET_LAYERS_PER_BLOCK = 2
UNET_SAMPLE_SIZE = 32
VAE_CHANNELS = (32, 64)
TEXT_LAYERS = 3
TEXT_INTERMEDIATE = 37
CLIP_VOCAB_SIZE = 49408
CLIP_MAX_LENGTH = 77
BOS_TOKEN_ID = 49406
EOS_TOKEN_ID = 49407
SD1_TEXT_WIDTH = 32
SD2_TEXT_WIDTH = 32
SDXL_TEXT_WIDTHS = (32, 48)
SDXL_TIME_EMBED_DIM = 8


def text_heads(hidden: int) -> int:
    """Attention heads for a text encoder of width `hidden` (64-wide heads, as CLIP uses)."""
    return max(1, hidden // 64)


def unet_heads(channels: tuple[int, ...]) -> tuple[int, ...]:
    """SD2/SDXL UNet heads per block: 64-wide heads, as the real models use."""
    return tuple(max(1, c // 64) for c in channels)


def _text_config(hidden: int, act: str, projection_dim: int | None = None) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_size=hidden,
        intermediate_size=TEXT_INTERMEDIATE,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=text_heads(hidden),
        hidden_act=act,
        projection_dim=projection_dim or hidden,
        layer_norm_eps=1e-5,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=EOS_TOKEN_ID,
    )


def _clip_text_model(hidden: int, act: str) -> torch.nn.Module:
    return CLIPTextModel(_text_config(hidden, act))


def _clip_text_model_with_projection(hidden: int, act: str) -> torch.nn.Module:
    return CLIPTextModelWithProjection(_text_config(hidden, act, projection_dim=hidden))


def _unet_family_kwargs(family: str) -> dict[str, Any]:
    """What differs between the families' UNets (everything else is shared)."""
    if family == "sd1":
        return {"cross_attention_dim": SD1_TEXT_WIDTH, "attention_head_dim": 8}
    common = {"attention_head_dim": unet_heads(UNET_CHANNELS), "use_linear_projection": True}
    if family == "sd2":
        return {**common, "cross_attention_dim": SD2_TEXT_WIDTH}
    pooled_width = SDXL_TEXT_WIDTHS[1]
    return {
        **common,
        "cross_attention_dim": sum(SDXL_TEXT_WIDTHS),
        "transformer_layers_per_block": (1, 2),
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": SDXL_TIME_EMBED_DIM,
        "projection_class_embeddings_input_dim": 6 * SDXL_TIME_EMBED_DIM + pooled_width,
    }


def _unet(family: str, in_channels: int) -> torch.nn.Module:
    return UNet2DConditionModel(
        sample_size=UNET_SAMPLE_SIZE,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=UNET_CHANNELS,
        layers_per_block=UNET_LAYERS_PER_BLOCK,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32,
        **_unet_family_kwargs(family),
    )


def _vae() -> torch.nn.Module:
    """Two levels, so latents are 1/2 of the image size (fast); scaling factor left at the diffusers default."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(VAE_CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_CHANNELS),
        block_out_channels=VAE_CHANNELS,
        latent_channels=4,
        sample_size=UNET_SAMPLE_SIZE * 2,
    )


def _scheduler(prediction_type: str) -> EulerDiscreteScheduler:
    """SD's training noise schedule; `prediction_type` is the one fact a single file does not record."""
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        steps_offset=1,
        timestep_spacing="leading",
    )


def _text_encoders(family: str) -> dict[str, torch.nn.Module]:
    if family == "sd1":
        return {"text_encoder": _clip_text_model(SD1_TEXT_WIDTH, "quick_gelu")}
    if family == "sd2":
        return {"text_encoder": _clip_text_model(SD2_TEXT_WIDTH, "gelu")}
    return {
        "text_encoder": _clip_text_model(SDXL_TEXT_WIDTHS[0], "quick_gelu"),
        "text_encoder_2": _clip_text_model_with_projection(SDXL_TEXT_WIDTHS[1], "gelu"),
    }


def build_tiny_components(
    family: str, seed: int = 0, *, in_channels: int = 4, prediction_type: str = "epsilon"
) -> dict[str, Any]:
    """Random tiny `unet`, `vae`, `text_encoder` (+ `text_encoder_2` for SDXL) and a `scheduler`, in eval mode.

    Deterministic for a given seed: the global torch RNG is seeded once, then modules are built in a fixed order.
    `in_channels=9` gives an inpainting UNet. No tokenizer: the app builds the real CLIP tokenizer itself.
    """
    if family not in FAMILIES:
        raise ValueError(f"Unknown model family {family!r}; expected one of {FAMILIES}")
    torch.manual_seed(seed)
    components: dict[str, Any] = {"unet": _unet(family, in_channels), "vae": _vae(), **_text_encoders(family)}
    for module in components.values():
        module.eval()
    components["scheduler"] = _scheduler(prediction_type)
    return components


def _to_saveable(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Fresh contiguous copies (safetensors refuses shared or strided storage); floats are cast to `dtype`."""
    return {
        key: tensor.detach().to(dtype=dtype if tensor.is_floating_point() else tensor.dtype, copy=True).contiguous()
        for key, tensor in state.items()
    }


def write_tiny_checkpoint(
    path: str | Path, family: str, *, seed: int = 0, dtype: torch.dtype = torch.float16, in_channels: int = 4
) -> Path:
    """Build tiny components and write them as one LDM single-file `.safetensors` (like an A1111 checkpoint)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    components = build_tiny_components(family, seed, in_channels=in_channels)
    state = _to_saveable(pipeline_components_to_ldm(components, family), dtype)
    save_file(state, str(target), metadata={"format": "pt"})
    return target


def write_tiny_vae(path: str | Path, *, seed: int = 0, block_out_channels: tuple[int, ...] = VAE_CHANNELS,
                   dtype: torch.dtype = torch.float16) -> Path:
    """A standalone VAE file in A1111's `models/VAE` layout (LDM keys without the `first_stage_model.` prefix).

    Other `block_out_channels` give a VAE that does not fit the tiny checkpoints (for the mismatch path)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    levels = len(block_out_channels)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                        up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=block_out_channels,
                        latent_channels=4)
    state = {key.removeprefix("first_stage_model."): value for key, value in vae_to_ldm(vae.state_dict()).items()}
    save_file(_to_saveable(state, dtype), str(target))
    return target
