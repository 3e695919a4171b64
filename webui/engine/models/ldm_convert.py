"""Convert diffusers state dicts to the original LDM ("A1111 single file") layout.

Why: users bring single-file checkpoints, so the loader must be tested against real single-file layouts. We cannot
download real checkpoints, and diffusers only converts LDM -> diffusers (`diffusers.loaders.single_file_utils`).
This module is the inverse of that mapping, so tiny random diffusers models can be written as files with exactly the
key names and tensor shapes that SD1, SD2 and SDXL checkpoints use. Every function raises `ValueError` on a key it
does not know, so a new diffusers layout fails loudly instead of writing a silently incomplete file.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_OPEN_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

StateDict = dict[str, torch.Tensor]

# --- UNet -----------------------------------------------------------------------------------------------------------

# Modules outside the down/mid/up blocks; `add_embedding` is SDXL's size/crop conditioning ("label_emb" in LDM).
_UNET_TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}
# LDM's ResBlock keeps its layers in nn.Sequential containers, hence the numeric indices.
_UNET_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_UNET_BLOCK_RE = re.compile(
    r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$"
)
_UNET_UP_ATTENTION_RE = re.compile(r"^up_blocks\.(\d+)\.attentions\.")
_UNET_MID_RE = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def _split_module(key: str) -> tuple[str, str]:
    """'a.b.weight' -> ('a.b', 'weight'): the module path and the parameter name."""
    module, _, param = key.rpartition(".")
    return module, param


def _unet_resnet_rest(rest: str) -> str:
    """Rename the inside of a diffusers ResnetBlock2D ('norm1.weight') to LDM's ResBlock ('in_layers.0.weight')."""
    module, param = _split_module(rest)
    if module not in _UNET_RESNET_PARTS:
        raise ValueError(f"Unknown UNet resnet parameter: {rest}")
    return f"{_UNET_RESNET_PARTS[module]}.{param}"


def _unet_top_level_key(key: str) -> str | None:
    module, param = _split_module(key)
    ldm_module = _UNET_TOP_LEVEL.get(module)
    return None if ldm_module is None else f"{ldm_module}.{param}"


def _unet_mid_key(kind: str, index: int, rest: str) -> str:
    """LDM's middle_block is one Sequential: resnet (0), transformer (1), resnet (2)."""
    if kind == "resnets":
        return f"middle_block.{2 * index}.{_unet_resnet_rest(rest)}"
    return f"middle_block.{2 * index + 1}.{rest}"


def _unet_block_key(match: re.Match[str], layers_per_block: int, up_has_attention: set[int]) -> str:
    """Down block b, layer j is LDM input block 1 + b*(L+1) + j (its downsampler takes slot L); up block b, layer j is
    output block b*(L+1) + j (up blocks have one more layer, and the upsampler sits after the optional attention)."""
    side, kind, rest = match.group(1), match.group(3), match.group(5)
    block, layer = int(match.group(2)), int(match.group(4))
    if side == "down_blocks":
        start = 1 + block * (layers_per_block + 1)
        if kind == "resnets":
            return f"input_blocks.{start + layer}.0.{_unet_resnet_rest(rest)}"
        if kind == "attentions":
            return f"input_blocks.{start + layer}.1.{rest}"
        return f"input_blocks.{start + layers_per_block}.0.op.{rest.removeprefix('conv.')}"
    start = block * (layers_per_block + 1)
    if kind == "resnets":
        return f"output_blocks.{start + layer}.0.{_unet_resnet_rest(rest)}"
    if kind == "attentions":
        return f"output_blocks.{start + layer}.1.{rest}"
    slot = 2 if block in up_has_attention else 1
    return f"output_blocks.{start + layers_per_block}.{slot}.{rest}"


def _unet_key(key: str, layers_per_block: int, up_has_attention: set[int]) -> str:
    top = _unet_top_level_key(key)
    if top is not None:
        return top
    match = _UNET_BLOCK_RE.match(key)
    if match is not None:
        return _unet_block_key(match, layers_per_block, up_has_attention)
    mid = _UNET_MID_RE.match(key)
    if mid is not None:
        return _unet_mid_key(mid.group(1), int(mid.group(2)), mid.group(3))
    raise ValueError(f"Unknown UNet parameter: {key}")


def _layers_per_block(unet_config: Mapping[str, Any]) -> int:
    """LDM numbering needs one layer count for every block (as diffusers' own converter assumes)."""
    layers = unet_config["layers_per_block"]
    if isinstance(layers, int):
        return layers
    if len(set(layers)) == 1:
        return int(layers[0])
    raise ValueError(f"LDM layout needs the same layers_per_block for every block, got {layers}")


def unet_to_ldm(unet_state_dict: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> StateDict:
    """A `UNet2DConditionModel` state dict as LDM `model.diffusion_model.*` keys (input/middle/output blocks).

    `unet_config` is the model's config (`unet.config`); only `layers_per_block` is needed, because LDM numbers its
    blocks flat. Transformer (attention) blocks keep their diffusers names inside LDM's SpatialTransformer.
    """
    layers_per_block = _layers_per_block(unet_config)
    up_has_attention = {int(m.group(1)) for key in unet_state_dict if (m := _UNET_UP_ATTENTION_RE.match(key))}
    return {
        UNET_PREFIX + _unet_key(key, layers_per_block, up_has_attention): tensor
        for key, tensor in unet_state_dict.items()
    }


def unet_key_map(unet_keys: list[str], unet_config: Mapping[str, Any]) -> dict[str, str]:
    """diffusers UNet parameter key -> LDM key (without the `model.diffusion_model.` prefix).

    Used beyond the test fixtures: kohya's SDXL LoRA files name UNet modules the LDM way (`input_blocks_4_1_...`).
    """
    layers_per_block = _layers_per_block(unet_config)
    up_has_attention = {int(m.group(1)) for key in unet_keys if (m := _UNET_UP_ATTENTION_RE.match(key))}
    return {key: _unet_key(key, layers_per_block, up_has_attention) for key in unet_keys}


# --- VAE ------------------------------------------------------------------------------------------------------------

_VAE_TOP_LEVEL = {
    "encoder.conv_in": "encoder.conv_in",
    "encoder.conv_out": "encoder.conv_out",
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.conv_out": "decoder.conv_out",
    "decoder.conv_norm_out": "decoder.norm_out",
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
}
_VAE_ATTENTION_PARTS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_RESNET_PARTS = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "conv_shortcut": "nin_shortcut",
}
_VAE_DOWN_RE = re.compile(r"^encoder\.down_blocks\.(\d+)\.(resnets\.(\d+)|downsamplers\.0)\.(.+)$")
_VAE_UP_RE = re.compile(r"^decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.+)$")
_VAE_MID_RE = re.compile(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def _vae_resnet_rest(rest: str) -> str:
    module, param = _split_module(rest)
    if module not in _VAE_RESNET_PARTS:
        raise ValueError(f"Unknown VAE resnet parameter: {rest}")
    return f"{_VAE_RESNET_PARTS[module]}.{param}"


def _vae_attention(side: str, rest: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    """The mid-block attention: LDM names it `mid.attn_1` and stores q/k/v/proj_out as 1x1 convs ([c, c, 1, 1]).

    diffusers' converter squeezes those back to linear weights, and real files always carry the 4-D shape.
    """
    module, param = _split_module(rest)
    if module not in _VAE_ATTENTION_PARTS:
        raise ValueError(f"Unknown VAE attention parameter: {rest}")
    if param == "weight" and module != "group_norm":
        tensor = tensor.reshape(*tensor.shape, 1, 1)
    return f"{side}.mid.attn_1.{_VAE_ATTENTION_PARTS[module]}.{param}", tensor


def _vae_entry(key: str, tensor: torch.Tensor, num_up_blocks: int) -> tuple[str, torch.Tensor]:
    """One VAE parameter in LDM naming; decoder up blocks are stored in reverse order in LDM."""
    module, param = _split_module(key)
    if module in _VAE_TOP_LEVEL:
        return f"{_VAE_TOP_LEVEL[module]}.{param}", tensor
    if (down := _VAE_DOWN_RE.match(key)) is not None:
        block, layer, rest = down.group(1), down.group(3), down.group(4)
        if layer is None:
            return f"encoder.down.{block}.downsample.{rest}", tensor
        return f"encoder.down.{block}.block.{layer}.{_vae_resnet_rest(rest)}", tensor
    if (up := _VAE_UP_RE.match(key)) is not None:
        block, layer, rest = num_up_blocks - 1 - int(up.group(1)), up.group(3), up.group(4)
        if layer is None:
            return f"decoder.up.{block}.upsample.{rest}", tensor
        return f"decoder.up.{block}.block.{layer}.{_vae_resnet_rest(rest)}", tensor
    if (mid := _VAE_MID_RE.match(key)) is not None:
        side, kind, index, rest = mid.group(1), mid.group(2), int(mid.group(3)), mid.group(4)
        if kind == "attentions":
            return _vae_attention(side, rest, tensor)
        return f"{side}.mid.block_{index + 1}.{_vae_resnet_rest(rest)}", tensor
    raise ValueError(f"Unknown VAE parameter: {key}")


def vae_to_ldm(vae_state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """An `AutoencoderKL` state dict as LDM `first_stage_model.*` keys (encoder.down.N, decoder.up.N, mid.attn_1)."""
    up_indices = {int(m.group(1)) for k in vae_state_dict if (m := _VAE_UP_RE.match(k))}
    num_up_blocks = max(up_indices) + 1 if up_indices else 0
    converted: StateDict = {}
    for key, tensor in vae_state_dict.items():
        ldm_key, ldm_tensor = _vae_entry(key, tensor, num_up_blocks)
        converted[VAE_PREFIX + ldm_key] = ldm_tensor
    return converted


# --- Text encoders --------------------------------------------------------------------------------------------------


def _without_text_model(key: str) -> str:
    """transformers >= 5.6 flattened `CLIPTextModel` (no `text_model.` level); `...WithProjection` still has it.
    Accept both so the converters work with either class and either transformers version."""
    return key.removeprefix("text_model.")


def clip_to_ldm(text_encoder_state_dict: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """A HF `CLIPTextModel` (OpenAI CLIP-L layout) under `prefix`, e.g. `cond_stage_model.transformer.`.

    LDM files embed the HF module itself, so the keys are `prefix + "text_model." + <HF key>`; diffusers strips only
    the prefix when loading. A projection has no slot in this layout, so it is rejected.
    """
    converted: StateDict = {}
    for key, tensor in text_encoder_state_dict.items():
        inner = _without_text_model(key)
        if not inner.startswith(("embeddings.", "encoder.layers.", "final_layer_norm.")):
            raise ValueError(f"Unknown CLIP text encoder parameter for the LDM CLIP layout: {key}")
        converted[f"{prefix}text_model.{inner}"] = tensor
    return converted


_OPEN_CLIP_TOP_LEVEL = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_OPEN_CLIP_LAYER_PARTS = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_CLIP_LAYER_RE = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
_QKV_RE = re.compile(r"^self_attn\.([qkv])_proj\.(weight|bias)$")


def _open_clip_in_proj(prefix: str, layers: dict[tuple[int, str], dict[str, torch.Tensor]]) -> StateDict:
    """OpenCLIP uses nn.MultiheadAttention: q, k and v live in one `in_proj_*` tensor, concatenated in that order."""
    converted: StateDict = {}
    for (layer, param), parts in sorted(layers.items()):
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"Layer {layer} lacks some of q/k/v {param}: found {sorted(parts)}")
        fused = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        converted[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{param}"] = fused
    return converted


def _open_clip_layer_key(layer: str, rest: str) -> str:
    module, param = _split_module(rest)
    if module not in _OPEN_CLIP_LAYER_PARTS:
        raise ValueError(f"Unknown CLIP encoder layer parameter: {rest}")
    return f"transformer.resblocks.{layer}.{_OPEN_CLIP_LAYER_PARTS[module]}.{param}"


def open_clip_to_ldm(text_encoder_state_dict: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """A HF `CLIPTextModel[WithProjection]` in OpenCLIP layout under `prefix` (SD2: `cond_stage_model.model.`,
    SDXL's second encoder: `conditioner.embedders.1.model.`).

    `text_projection` is stored transposed ([hidden, projection]) because OpenCLIP multiplies `x @ proj`, while HF
    uses a Linear layer; diffusers reads its first dimension as the width to split `in_proj` by.
    """
    converted: StateDict = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, tensor in text_encoder_state_dict.items():
        inner = _without_text_model(key)
        if inner in _OPEN_CLIP_TOP_LEVEL:
            converted[prefix + _OPEN_CLIP_TOP_LEVEL[inner]] = tensor
        elif inner == "text_projection.weight":
            converted[prefix + "text_projection"] = tensor.t().contiguous()
        elif (layer := _CLIP_LAYER_RE.match(inner)) is not None:
            if (part := _QKV_RE.match(layer.group(2))) is not None:
                qkv.setdefault((int(layer.group(1)), part.group(2)), {})[part.group(1)] = tensor
            else:
                converted[prefix + _open_clip_layer_key(layer.group(1), layer.group(2))] = tensor
        else:
            raise ValueError(f"Unknown CLIP text encoder parameter for the OpenCLIP layout: {key}")
    converted.update(_open_clip_in_proj(prefix, qkv))
    return converted


# --- Whole pipelines ------------------------------------------------------------------------------------------------

_TextConverter = Callable[[Mapping[str, torch.Tensor], str], StateDict]

# Which text encoder goes where, per family: (component name, converter, LDM prefix).
FAMILY_TEXT_ENCODERS: dict[str, tuple[tuple[str, _TextConverter, str], ...]] = {
    "sd1": (("text_encoder", clip_to_ldm, SD1_CLIP_PREFIX),),
    "sd2": (("text_encoder", open_clip_to_ldm, SD2_OPEN_CLIP_PREFIX),),
    "sdxl": (
        ("text_encoder", clip_to_ldm, SDXL_CLIP_PREFIX),
        ("text_encoder_2", open_clip_to_ldm, SDXL_OPEN_CLIP_PREFIX),
    ),
}


def _merge_into(target: StateDict, part: StateDict) -> None:
    """Add `part` to `target`; a clash would mean two components claim one key, i.e. a mapping bug."""
    clash = target.keys() & part.keys()
    if clash:
        raise ValueError(f"Duplicate LDM keys: {sorted(clash)[:5]}")
    target.update(part)


def pipeline_components_to_ldm(components: Mapping[str, torch.nn.Module], family: str) -> StateDict:
    """One single-file state dict for a pipeline's `unet`, `vae` and text encoder(s).

    `family` is "sd1", "sd2" or "sdxl"; it decides the text encoder layout, which is what tells the families apart
    in a single file. Tensors are returned as they are (no dtype change, possibly views); the writer decides that.
    """
    if family not in FAMILY_TEXT_ENCODERS:
        raise ValueError(f"Unknown model family {family!r}; expected one of {sorted(FAMILY_TEXT_ENCODERS)}")
    unet = components["unet"]
    state: StateDict = unet_to_ldm(unet.state_dict(), unet.config)
    _merge_into(state, vae_to_ldm(components["vae"].state_dict()))
    for name, convert, prefix in FAMILY_TEXT_ENCODERS[family]:
        _merge_into(state, convert(components[name].state_dict(), prefix))
    return state
