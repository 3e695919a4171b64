"""The parts of a Flux pipeline built from single files: the transformer (BFL or diffusers keys), CLIP-L, T5 and
the VAE, each sized from its own tensor shapes. No hub, no config downloads.

Why each part separately: Flux comes as one full checkpoint (ComfyUI/Forge layout) or as a transformer alone with
the text encoders in `models/text_encoder/` and the VAE (`ae.safetensors`) in `models/VAE/`, as Forge users keep
them. Any of these parts can be the one a user supplies, so each is built from a plain state dict here.

Config facts that shapes cannot tell and that every released Flux.1 shares: RoPE axes split (1/8, 7/16, 7/16) of
the head width (16, 56, 56 for 128), the VAE's scaling 0.3611 and shift 0.1159, T5's relative attention distance
128 and gated GELU, CLIP-L's quick GELU. The CLIP tokenizer is generated from open-clip's vocabulary
(`engine/models/clip_tokenizer.py`); the T5 tokenizer is not shipped by any package, so it is read from a folder
in `models/text_encoder/` (FLUX.1's `tokenizer_2` folder, copied there).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from accelerate import init_empty_weights

from webui.core.errors import ModelLoadError
from webui.engine.families.flux_keys import bfl_to_diffusers
from webui.engine.models.architecture import infer_hf_clip_config, infer_vae_config

FLUX_VAE_SCALING = 0.3611
FLUX_VAE_SHIFT = 0.1159
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
StateDict = dict[str, torch.Tensor]


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix):].split(".", 1)[0] for k in state if k.startswith(prefix)})


def transformer_config(state: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """`FluxTransformer2DModel` fields from diffusers-named shapes."""
    hidden, in_channels = state["x_embedder.weight"].shape
    head_dim = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    axis = head_dim // 8
    return {
        "patch_size": 1, "in_channels": int(in_channels), "num_layers": _count(state, "transformer_blocks."),
        "num_single_layers": _count(state, "single_transformer_blocks."), "attention_head_dim": head_dim,
        "num_attention_heads": int(hidden) // head_dim,
        "joint_attention_dim": int(state["context_embedder.weight"].shape[1]),
        "pooled_projection_dim": int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
        "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in state,
        "axes_dims_rope": (axis, (head_dim - axis) // 2, (head_dim - axis) // 2),
    }


def build_transformer(state: StateDict, dtype: torch.dtype):
    """The transformer from BFL (`double_blocks.`) or diffusers keys. fp8-stored weights stay fp8 and are upcast
    per layer while computing (diffusers' layerwise casting, as Forge does), everything else in `dtype`."""
    from diffusers import FluxTransformer2DModel

    if any(k.startswith(("double_blocks.", "model.diffusion_model.")) for k in state):
        try:
            state = bfl_to_diffusers(state)
        except KeyError as err:
            raise ModelLoadError(f"The Flux transformer has a tensor of an unknown layout: {err}") from err
    fp8 = next((t.dtype for t in state.values() if t.dtype in FP8_DTYPES), None)
    state = {k: v.to(dtype) for k, v in state.items()}
    with init_empty_weights():
        model = FluxTransformer2DModel(**transformer_config(state))
    _assign(model, state, "Flux transformer")
    if fp8 is not None:
        model.enable_layerwise_casting(storage_dtype=fp8, compute_dtype=dtype)
    return model


def build_clip(state: StateDict, dtype: torch.dtype):
    """CLIP-L text model (transformers names, with or without `text_model.`)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    plain = {k.removeprefix("text_model."): v for k, v in state.items() if k != "text_projection.weight"}
    config = infer_hf_clip_config({k: tuple(v.shape) for k, v in plain.items()})
    config = CLIPTextConfig(**config, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407,
                            pad_token_id=49407)
    with init_empty_weights():
        model = CLIPTextModel(config)
    # The module tree may or may not wrap a `text_model` (it differs between transformers versions).
    prefix = "text_model." if any(k.startswith("text_model.") for k in model.state_dict()) else ""
    full = {prefix + k: v.to(dtype) for k, v in plain.items() if not k.endswith("position_ids")}
    _assign(model, full, "CLIP-L text encoder")
    return model


def build_t5(state: StateDict, dtype: torch.dtype):
    """T5 encoder (transformers names: `shared.weight`, `encoder.block.N...`)."""
    from transformers import T5Config, T5EncoderModel

    embed = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
    if embed is None:
        raise ModelLoadError("The T5 text encoder has no token embedding (shared.weight).")
    bias = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    heads = int(bias.shape[1])
    inner = int(state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0])
    config = T5Config(vocab_size=int(embed.shape[0]), d_model=int(embed.shape[1]), d_kv=inner // heads,
                      d_ff=int(state["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]),
                      num_layers=_count(state, "encoder.block."), num_heads=heads,
                      relative_attention_num_buckets=int(bias.shape[0]), feed_forward_proj="gated-gelu",
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    full = {k: v.to(dtype) for k, v in state.items()}
    full["shared.weight"] = full["encoder.embed_tokens.weight"] = embed.to(dtype)
    with init_empty_weights():
        model = T5EncoderModel(config)
    _assign(model, full, "T5 text encoder")
    return model


def _assign(model: torch.nn.Module, state: StateDict, what: str) -> None:
    """Take the tensors into a model built with empty (meta) parameters (no random init, no second copy; its
    buffers are real); any mismatch is a
    `ModelLoadError` saying which part is broken."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as err:
        raise ModelLoadError(f"The {what} weights do not fit the size read from them: {err}") from err
    if missing or unexpected:
        raise ModelLoadError(f"The {what} is incomplete or of an unknown layout (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}).")
    model.eval()


def build_vae(state: StateDict, dtype: torch.dtype):
    """Flux's 16-channel VAE from LDM names (`ae.safetensors`, `vae.` in full checkpoints) or diffusers names."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    state = {k.removeprefix("first_stage_model."): v for k, v in state.items()}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    config = dict(infer_vae_config(shapes), scaling_factor=FLUX_VAE_SCALING, shift_factor=FLUX_VAE_SHIFT,
                  use_quant_conv="quant_conv.weight" in state, use_post_quant_conv="post_quant_conv.weight" in state)
    if any(k.startswith("encoder.down.") for k in state):
        state = convert_ldm_vae_checkpoint(state, config)
    with init_empty_weights():
        vae = AutoencoderKL(**config)
    _assign(vae, {k: v.to(dtype) for k, v in state.items()}, "VAE")
    return vae


def load_t5_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"The T5 tokenizer in '{folder.name}' cannot be read: {err}") from err
