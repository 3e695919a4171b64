"""ControlNet files -> `diffusers.ControlNetModel`, offline, with the family read from the weights.

Why our own reading: a ControlNet file carries no config, and `from_single_file` would fetch one from the hub.
The layout (`control_model.*` as the original LDM release, bare LDM keys as some SD2 files, or diffusers keys)
is told from the key names; the architecture from tensor shapes (block widths, layers per block, transformer
depth, the hint encoder's widths, SDXL's added embeddings) and, for what shapes cannot say (attention head
counts), from the loaded checkpoint's UNet of the same family. The LDM keys are converted with diffusers' own
converter. Diffusers folders (`config.json` + weights) load with `from_pretrained(local_files_only=True)`.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import ControlNetModel
from safetensors.torch import load_file

from webui.core.errors import ModelLoadError, ValidationError
from webui.engine.control.t2i_adapter import DIFFUSERS as ADAPTER_DIFFUSERS
from webui.engine.control.t2i_adapter import ORIGINAL as ADAPTER_ORIGINAL
from webui.engine.control.t2i_adapter import adapter_layout, folder_family
from webui.engine.models.detection import SD1, SD2, SDXL
from webui.engine.models.safetensors_header import header_shapes

LDM_PREFIX = "control_model."
CONTROL_LORA_MARKER = "lora_controlnet"
CONTROL_LORA = "control-lora"
ADAPTER_FOLDER = "t2i-adapter-folder"
ADAPTER_LAYOUTS = (ADAPTER_ORIGINAL, ADAPTER_DIFFUSERS, ADAPTER_FOLDER)
_ADDED_EMBEDDING = (("label_emb.0.0", "add_embedding.linear_1"), ("label_emb.0.2", "add_embedding.linear_2"))
_HINT_RE = re.compile(r"^input_hint_block\.(\d+)\.(weight|bias)$")
_FAMILY_NAMES = {SD1: "SD 1.x", SD2: "SD 2.x", SDXL: "SDXL"}
_FOLDER_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")


@dataclass(frozen=True)
class ControlNetFacts:
    """What the weights say: key layout and the base-model family they were trained for."""

    layout: str  # "ldm", "diffusers", "folder", "control-lora", or a T2I-Adapter's (see ADAPTER_LAYOUTS)
    family: str
    cross_attention_dim: int | None


def family_name(family: str) -> str:
    return _FAMILY_NAMES.get(family, family)


def short_hash(path: Path) -> str:
    """The extension's `name [hash]` hash: A1111's legacy model hash (sha256 of 64 KiB at 1 MiB, 8 hex digits).
    Cheap (one small read), so model lists never hash whole multi-GB files."""
    weights = folder_weights(path) if path.is_dir() else path
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        handle.seek(0x100000)
        digest.update(handle.read(0x10000))
    return digest.hexdigest()[:8]


def folder_weights(folder: Path) -> Path:
    for name in _FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise ModelLoadError(f"The ControlNet folder '{folder.name}' has no diffusion_pytorch_model.safetensors.")


def _strip_ldm(keys: Mapping[str, object]) -> dict[str, object]:
    if any(key.startswith(LDM_PREFIX) for key in keys):
        return {key[len(LDM_PREFIX):]: value for key, value in keys.items() if key.startswith(LDM_PREFIX)}
    return dict(keys)


def facts_from_shapes(shapes: Mapping[str, tuple[int, ...]], name: str) -> ControlNetFacts:
    """Layout and family of a ControlNet from its tensor names and shapes (no tensor is read)."""
    if CONTROL_LORA_MARKER in shapes:  # Stability's control-lora: low-rank pairs `<module>.up`/`.down`, LDM names
        layout, keys = CONTROL_LORA, dict(shapes)
        added = any(key.startswith("label_emb.") for key in keys)
        attn = [s for k, s in keys.items() if k.endswith(("attn2.to_k.weight", "attn2.to_k.down"))]
        if not any(key.startswith("input_hint_block.") for key in keys):
            raise ModelLoadError(f"'{name}' is marked as a ControlNet-LoRA but has no hint encoder "
                                 "(input_hint_block); the file is incomplete.")
    elif (adapter := adapter_layout(shapes)) is not None:
        return ControlNetFacts(adapter, SD1, None)
    elif any(key.startswith("controlnet_cond_embedding.") for key in shapes):
        layout, keys = "diffusers", dict(shapes)
        added = "add_embedding.linear_1.weight" in keys
        attn = [s for k, s in keys.items() if k.endswith("attn2.to_k.weight")]
    elif any(k.startswith((LDM_PREFIX + "input_hint_block.", "input_hint_block.")) for k in shapes):
        layout, keys = "ldm", _strip_ldm(shapes)
        added = "label_emb.0.0.weight" in keys
        attn = [s for k, s in keys.items() if k.endswith("attn2.to_k.weight")]
    else:
        raise ModelLoadError(f"'{name}' is neither a ControlNet nor a T2I-Adapter (no hint encoder or adapter "
                             "body in the file).")
    context = attn[0][1] if attn else None
    family = SDXL if added else SD2 if context == 1024 else SD1
    return ControlNetFacts(layout, family, context)


def folder_facts(folder: Path) -> ControlNetFacts:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("_class_name") == "T2IAdapter":
        return ControlNetFacts(ADAPTER_FOLDER, folder_family(config), None)
    if config.get("_class_name", "ControlNetModel") != "ControlNetModel":
        raise ModelLoadError(f"'{folder.name}' is a {config.get('_class_name')}, not a ControlNetModel.")
    added = config.get("addition_embed_type") == "text_time"
    context = config.get("cross_attention_dim")
    return ControlNetFacts("folder", SDXL if added else SD2 if context == 1024 else SD1, context)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a single-file ControlNet. Pickles (`.pth`, `.ckpt`) only with `weights_only=True`: a file
    that needs code to load is refused, never executed."""
    if path.suffix.lower() == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(f"'{path.name}' needs code execution to load and was refused; use a .safetensors "
                             "file.") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ModelLoadError(f"'{path.name}' holds no state dict.")
    return {key: value for key, value in state.items() if torch.is_tensor(value)}


def read_facts(path: Path) -> ControlNetFacts:
    try:
        if path.is_dir():
            return folder_facts(path)
        if path.suffix.lower() == ".safetensors":
            return facts_from_shapes(header_shapes(path), path.name)
        return facts_from_shapes({k: tuple(v.shape) for k, v in read_state(path).items()}, path.name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"The ControlNet '{path.name}' could not be read: {exc}") from exc


def check_family(facts: ControlNetFacts, title: str, base_family: str, base_unet, checkpoint: str) -> None:
    """Refuse a ControlNet made for another family, with what to do instead."""
    base_context = getattr(base_unet.config, "cross_attention_dim", None)
    fits = facts.family == base_family or (facts.family == SD1 and base_family == SD2 and
                                           facts.cross_attention_dim == base_context)
    if facts.cross_attention_dim is not None and facts.cross_attention_dim != base_context:
        fits = False
    if not fits:
        raise ValidationError(
            f"The ControlNet '{title}' is for {family_name(facts.family)} models, but the loaded checkpoint "
            f"'{checkpoint}' is {family_name(base_family)}. Pick a {family_name(base_family)} ControlNet.")


# ----------------------------------------------------------------------------------------------------------------
# Config from shapes


def _count(keys, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({match.group(1) for key in keys if (match := regex.match(key))})


def derive_config(state: Mapping[str, torch.Tensor], base_config: Mapping[str, object]) -> dict[str, object]:
    """A `ControlNetModel` config for a diffusers-layout state dict; head counts come from the base UNet."""
    keys = list(state)
    levels = _count(keys, r"^down_blocks\.(\d+)\.")
    widths = tuple(int(state[f"down_blocks.{i}.resnets.0.conv2.weight"].shape[0]) for i in range(levels))
    has_attention = [any(k.startswith(f"down_blocks.{i}.attentions.") for k in keys) for i in range(levels)]
    depth = tuple(max(1, _count(keys, rf"^down_blocks\.{i}\.attentions\.0\.transformer_blocks\.(\d+)\."))
                  for i in range(levels))
    hint = hint_channels(state)
    config = {key: base_config[key] for key in ("attention_head_dim", "num_attention_heads", "norm_num_groups",
                                                "addition_time_embed_dim", "upcast_attention")
              if key in base_config}
    linear = next((state[k].dim() == 2 for k in keys if k.endswith(".proj_in.weight")), False)
    attn = next((state[k] for k in keys if k.endswith("attn2.to_k.weight")), None)
    added = "add_embedding.linear_1.weight" in state
    config.update(
        in_channels=int(state["conv_in.weight"].shape[1]),
        conditioning_channels=int(state["controlnet_cond_embedding.conv_in.weight"].shape[1]),
        conditioning_embedding_out_channels=hint,
        block_out_channels=widths,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attention),
        layers_per_block=_count(keys, r"^down_blocks\.0\.resnets\.(\d+)\."),
        transformer_layers_per_block=depth,
        cross_attention_dim=int(attn.shape[1]) if attn is not None else base_config.get("cross_attention_dim"),
        use_linear_projection=linear,
        mid_block_type="UNetMidBlock2DCrossAttn" if any(k.startswith("mid_block.attentions.") for k in keys)
        else "UNetMidBlock2D",
        addition_embed_type="text_time" if added else None,
        projection_class_embeddings_input_dim=int(state["add_embedding.linear_1.weight"].shape[1]) if added
        else None,
    )
    if not added:
        config.pop("addition_time_embed_dim", None)
    return config


def ldm_to_diffusers(state: Mapping[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """Original-release keys -> diffusers keys. Diffusers' converter does the UNet part; the hint encoder is mapped
    here by position, because that converter assumes the full-size hint encoder (8 convolutions)."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    bare = _strip_ldm(state)
    hint = {key: value for key, value in bare.items() if key.startswith("input_hint_block.")}
    rest = {key: value for key, value in bare.items() if key not in hint}
    converted = convert_controlnet_checkpoint(rest, {"layers_per_block": layers_per_block})
    for ldm, diffusers_name in _ADDED_EMBEDDING:
        for part in ("weight", "bias"):
            if f"{ldm}.{part}" in rest:  # SDXL's size/crop embedding, which that converter leaves out
                converted[f"{diffusers_name}.{part}"] = rest[f"{ldm}.{part}"]
    converted.update(hint_to_diffusers(hint))
    return {key: value for key, value in converted.items() if value is not None}


def hint_to_diffusers(hint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`input_hint_block.K` (convolutions at even K, activations between) -> `controlnet_cond_embedding.*`, by
    position: the first is `conv_in`, the last `conv_out`, the others `blocks.N`, whatever their number."""
    positions = sorted({int(m.group(1)) for key in hint if (m := _HINT_RE.match(key))})
    converted = {}
    for order, position in enumerate(positions):
        target = ("conv_in" if order == 0 else "conv_out" if order == len(positions) - 1
                  else f"blocks.{order - 1}")
        for part in ("weight", "bias"):
            converted[f"controlnet_cond_embedding.{target}.{part}"] = hint[f"input_hint_block.{position}.{part}"]
    return converted


def hint_channels(state: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """`conditioning_embedding_out_channels` of a diffusers-keyed hint encoder (conv_in, then every second
    block: the strided ones that change the width)."""
    blocks = _count(state, r"^controlnet_cond_embedding\.blocks\.(\d+)\.")
    return (int(state["controlnet_cond_embedding.conv_in.weight"].shape[0]),
            *(int(state[f"controlnet_cond_embedding.blocks.{i}.weight"].shape[0]) for i in range(1, blocks, 2)))


def _ldm_layers_per_block(state: Mapping[str, torch.Tensor]) -> int:
    """Input blocks per level: blocks before the first downsampler (`input_blocks.N.0.op`), minus conv_in."""
    bare = _strip_ldm(state)
    first_down = min((int(m.group(1)) for key in bare if (m := re.match(r"^input_blocks\.(\d+)\.0\.op\.", key))),
                     default=None)
    if first_down is None:
        return _count(bare, r"^input_blocks\.(\d+)\.") - 1
    return first_down - 1


def build_model(state: Mapping[str, torch.Tensor], base_config: Mapping[str, object], name: str,
                dtype: torch.dtype) -> ControlNetModel:
    config = derive_config(state, base_config)
    try:
        model = ControlNetModel(**config)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"The ControlNet '{name}' does not fit the loaded checkpoint's architecture: {exc}") \
            from exc
    if missing or unexpected:
        raise ModelLoadError(f"The ControlNet '{name}' has weights this architecture does not expect "
                             f"(missing {len(missing)}, unexpected {len(unexpected)}, e.g. "
                             f"{(list(missing) + list(unexpected))[:3]}).")
    return (model if model.dtype == dtype else model.to(dtype)).eval()


def load_controlnet(path: Path, base_config: Mapping[str, object], dtype: torch.dtype) -> ControlNetModel:
    """One ControlNet file or folder, fully offline."""
    try:
        if path.is_dir():
            return ControlNetModel.from_pretrained(path, local_files_only=True, torch_dtype=dtype).eval()
        state = read_state(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"The ControlNet '{path.name}' could not be loaded: {exc}") from exc
    facts = facts_from_shapes({k: tuple(v.shape) for k, v in state.items()}, path.name)
    if facts.layout == "ldm":
        try:
            state = ldm_to_diffusers(state, _ldm_layers_per_block(state))
        except (KeyError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"The ControlNet '{path.name}' could not be converted: {exc}") from exc
    return build_model(state, base_config, path.name, dtype)
