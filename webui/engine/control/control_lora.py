"""Stability's ControlNet-LoRA files ("control-lora") -> a `ControlNetModel` built on the loaded checkpoint.

A control-lora file stores a ControlNet as a difference from the base model's UNet encoder, in LDM names: for most
convolutions and linear layers a low-rank pair (`<module>.up`, `<module>.down`), for the rest the full tensor
(norms, biases, the hint encoder `input_hint_block.*`, the zero convolutions `zero_convs.*`, `middle_block_out.*`),
and a `lora_controlnet` marker. The ControlNet is the base encoder with `weight + up @ down` (scale 1: the files
carry no alpha) and the full tensors in place, which is how ComfyUI, the reference implementation, builds it.

Why merged here rather than with diffusers' `load_lora_adapter` (PEFT): diffusers' converter assumes the released
hint encoder (its last convolution at index 14) and two layers per block, and a PEFT adapter adds low-rank matmuls
to every step. A merged model is an ordinary `ControlNetModel` for the cache, the offload and the pipelines.

The base weights are the checkpoint's own (`ControlBase.weights`: the UNet's state without the prompt's LoRAs),
so the ControlNet depends on the checkpoint only, and the cache keys it by the checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import ControlNetModel

from webui.core.errors import ModelLoadError
from webui.engine.control.loading import CONTROL_LORA_MARKER, hint_channels, hint_to_diffusers, read_state
from webui.engine.models.ldm_convert import unet_key_map
from webui.engine.runtime.offload_store import stored_tensor

_OWN_PREFIXES = ("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.")


@dataclass(frozen=True, eq=False)
class ControlBase:
    """The loaded checkpoint a ControlNet is built against. `weights` gives the UNet's own tensors (LoRAs merged
    for a prompt left out); it is called only when a control-lora is built."""

    unet: torch.nn.Module
    checkpoint: str
    weights: Callable[[], Mapping[str, torch.Tensor]] = field(repr=False)
    vae_scale_factor: int = 8  # pixels per latent (a T2I-Adapter's first level is the latents' size)

    @property
    def config(self) -> dict[str, object]:
        return dict(self.unet.config)


def module_weights(model: torch.nn.Module, originals: Mapping[int, torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
    """`model`'s tensors by name, read from accelerate's offload store where `--lowvram` left them on the meta
    device; `originals` (`AdapterSet.originals()`: pre-LoRA weights by `id(module)`) replace changed weights."""
    originals = originals or {}
    state: dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, _ in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            changed = originals.get(id(module)) if name == "weight" else None
            state[prefix + name] = (changed if changed is not None else stored_tensor(module, name)).detach()
    return state


def _own_key(ldm_key: str) -> str | None:
    """ControlNet-only LDM names -> diffusers names (the hint encoder is mapped by position elsewhere)."""
    parts = ldm_key.split(".")
    if parts[0] == "zero_convs" and len(parts) == 4:
        return f"controlnet_down_blocks.{parts[1]}.{parts[3]}"
    if parts[0] == "middle_block_out" and len(parts) == 3:
        return f"controlnet_mid_block.{parts[2]}"
    return None


def _low_rank(up: torch.Tensor, down: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`up @ down` shaped as the weight (a convolution's pair is flattened past its first dimension)."""
    return (up.flatten(1).to(torch.float32) @ down.flatten(1).to(torch.float32)).reshape(shape)


def build_control_lora(state: Mapping[str, torch.Tensor], base: ControlBase, name: str,
                       dtype: torch.dtype) -> ControlNetModel:
    """The ControlNet of a control-lora state dict on `base`; a file that does not fit the checkpoint's
    architecture is a `ModelLoadError` naming what does not fit."""
    hint = hint_to_diffusers({k: v for k, v in state.items() if k.startswith("input_hint_block.")})
    try:
        model = ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=hint_channels(hint),
                                          conditioning_channels=int(hint["controlnet_cond_embedding.conv_in.weight"]
                                                                    .shape[1]), load_weights_from_unet=False)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"The ControlNet-LoRA '{name}' has an unusable hint encoder: {exc}") from exc
    wanted = model.state_dict()
    encoder_keys = [key for key in wanted if not key.startswith(_OWN_PREFIXES)]
    by_ldm = {ldm: key for key, ldm in unet_key_map(encoder_keys, model.config).items()}
    base_weights = base.weights()
    merged: dict[str, torch.Tensor] = {key: base_weights[key] for key in encoder_keys if key in base_weights}
    merged.update(hint)
    unmatched: list[str] = []
    pairs: list[tuple[str, str]] = []
    for key, value in state.items():
        if key == CONTROL_LORA_MARKER or key.startswith("input_hint_block.") or key.endswith(".down"):
            continue
        if key.endswith(".up"):
            target = by_ldm.get(key[: -len(".up")] + ".weight")
            if target is None or key[: -len(".up")] + ".down" not in state:
                unmatched.append(key)
            else:
                pairs.append((key, target))
            continue
        target = _own_key(key) or by_ldm.get(key)
        if target is None:
            unmatched.append(key)
        else:
            merged[target] = value
    if unmatched:
        raise ModelLoadError(f"The ControlNet-LoRA '{name}' has {len(unmatched)} weights the loaded checkpoint's "
                             f"UNet does not have (e.g. {unmatched[:3]}); it was made for another model.")
    for key, target in pairs:
        if target not in merged:
            raise ModelLoadError(f"The ControlNet-LoRA '{name}' changes '{target}', which the checkpoint lacks.")
        weight = merged[target]
        try:
            merged[target] = weight.to(torch.float32) + _low_rank(state[key], state[key[: -len('.up')] + ".down"],
                                                                  weight.shape)
        except RuntimeError as exc:
            raise ModelLoadError(f"The ControlNet-LoRA '{name}' does not fit the loaded checkpoint at "
                                 f"'{target}': {exc}") from exc
    missing = [key for key in wanted if key not in merged]
    if missing:
        raise ModelLoadError(f"The ControlNet-LoRA '{name}' lacks {len(missing)} weights the ControlNet needs "
                             f"(e.g. {missing[:3]}).")
    try:
        model.load_state_dict({key: value.to(dtype) for key, value in merged.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"The ControlNet-LoRA '{name}' does not fit the loaded checkpoint: {exc}") from exc
    return (model if model.dtype == dtype else model.to(dtype)).eval()


def load_control_lora(path: Path, base: ControlBase, dtype: torch.dtype) -> ControlNetModel:
    """One control-lora file (`.safetensors`, or a pickle read with `weights_only`) on `base`."""
    try:
        state = read_state(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"The ControlNet-LoRA '{path.name}' could not be loaded: {exc}") from exc
    return build_control_lora(state, base, path.name, dtype)
