"""Tiny ControlNets for the tiny test checkpoints, written in every layout users bring.

Why: the ControlNet path (file layouts, family checks, the pipelines, modes, start/end) must be tested on the CPU
on real files. `ControlNetModel.from_unet` copies the tiny UNet's encoder; its zero convolutions (the outputs
into the UNet) start at zero, so they are perturbed to give the model an effect. The hint encoder downsamples by
2 (one strided block), because the tiny VAE's latents are half the image size. Layouts:
- `diffusers`: one `.safetensors` with diffusers keys,
- `ldm`: one `.safetensors` with the original release's `control_model.*` keys,
- `folder`: a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`).
Also Stability's ControlNet-LoRA files (`write_tiny_control_lora`) and T2I-Adapters (`write_tiny_adapter`, in
TencentARC's original keys, diffusers keys or a diffusers folder).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import ControlNetModel, T2IAdapter
from safetensors.torch import save_file

from webui.engine.models.ldm_convert import unet_key_map
from webui.testing.tiny_models import UNET_CHANNELS, build_tiny_components

HINT_CHANNELS = (16, 32)
LAYOUTS = ("diffusers", "ldm", "folder")


def build_tiny_controlnet(family: str = "sd1", seed: int = 0, checkpoint_seed: int = 0) -> ControlNetModel:
    """A ControlNet fitting `write_tiny_checkpoint(family, seed=checkpoint_seed)`, with non-zero outputs."""
    unet = build_tiny_components(family, checkpoint_seed)["unet"]
    return controlnet_from_unet(unet, HINT_CHANNELS, seed)


def controlnet_from_unet(unet, hint_channels: tuple[int, ...], seed: int = 0) -> ControlNetModel:
    """`ControlNetModel.from_unet` with its zero convolutions perturbed (seeded), so it changes the output.
    Real-size models take the released hint encoder, `(16, 32, 96, 256)` (8x down, as SD's VAE)."""
    model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=hint_channels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in [*model.controlnet_down_blocks, model.controlnet_mid_block]:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.2)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) * 0.05)
        hint_out = model.controlnet_cond_embedding.conv_out  # strong, so the control image itself matters
        hint_out.weight.copy_(torch.randn(hint_out.weight.shape, generator=generator))
        hint_out.bias.zero_()
    return model.eval()


def _contiguous(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {key: value.detach().to(dtype).contiguous().clone() for key, value in state.items()}


def _save(model, target: Path, layout: str, state: Callable[[], dict[str, torch.Tensor]], dtype: torch.dtype) -> None:
    """A diffusers folder (`layout == "folder"`), else one `.safetensors` file of `state()`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if layout == "folder":
        model.to(dtype).save_pretrained(target, safe_serialization=True)
    else:
        save_file(_contiguous(state(), dtype), str(target))


def controlnet_to_ldm(model: ControlNetModel) -> dict[str, torch.Tensor]:
    """The original release's layout: `control_model.` + LDM UNet names, `zero_convs.N.0`, `middle_block_out.0`
    and `input_hint_block.K` (a Sequential with an activation between convolutions, so even indices)."""
    state = model.state_dict()
    unet_keys = [k for k in state if not k.startswith(("controlnet_", "controlnet_cond_embedding."))]
    names = unet_key_map(unet_keys, model.config)
    out = {names[key]: state[key] for key in unet_keys}
    blocks = len(model.controlnet_cond_embedding.blocks)
    hint = {"conv_in": 0, **{f"blocks.{i}": 2 * (i + 1) for i in range(blocks)}, "conv_out": 2 * (blocks + 1)}
    for name, position in hint.items():
        for part in ("weight", "bias"):
            out[f"input_hint_block.{position}.{part}"] = state[f"controlnet_cond_embedding.{name}.{part}"]
    for index in range(len(model.controlnet_down_blocks)):
        for part in ("weight", "bias"):
            out[f"zero_convs.{index}.0.{part}"] = state[f"controlnet_down_blocks.{index}.{part}"]
    for part in ("weight", "bias"):
        out[f"middle_block_out.0.{part}"] = state[f"controlnet_mid_block.{part}"]
    return {f"control_model.{key}": value for key, value in out.items()}


def write_tiny_controlnet(path: str | Path, family: str = "sd1", *, layout: str = "diffusers", seed: int = 0,
                          dtype: torch.dtype = torch.float32) -> Path:
    """Write a tiny ControlNet in `layout` ("diffusers", "ldm" or "folder") at `path`."""
    model = build_tiny_controlnet(family, seed)
    _save(model, Path(path), layout, lambda: controlnet_to_ldm(model) if layout == "ldm" else model.state_dict(),
          dtype)
    return Path(path)


def write_tiny_control_lora(path: str | Path, family: str = "sd1", *, rank: int = 4, seed: int = 0,
                            checkpoint_seed: int = 0) -> ControlNetModel:
    """Write a control-lora file (Stability's layout: LDM names, `<module>.up`/`.down` pairs for the encoder's
    convolutions and linear layers, full norms, biases, hint encoder and zero convolutions, a `lora_controlnet`
    marker) for `write_tiny_checkpoint(family, seed=checkpoint_seed)`; returns the ControlNet it stands for
    (the base encoder plus `up @ down`), to compare a loaded one with."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    model = build_tiny_controlnet(family, seed, checkpoint_seed)
    generator = torch.Generator().manual_seed(seed + 1)
    ldm = {key.removeprefix("control_model."): value for key, value in controlnet_to_ldm(model).items()}
    state = model.state_dict()
    encoder = [key for key in state if not key.startswith(("controlnet_", "controlnet_cond_embedding."))]
    names = {ldm_key: key for key, ldm_key in unet_key_map(encoder, model.config).items()}
    out: dict[str, torch.Tensor] = {"lora_controlnet": torch.zeros(())}
    for ldm_key, tensor in ldm.items():
        own = ldm_key.startswith(("input_hint_block.", "zero_convs.", "middle_block_out."))
        if own:
            out[ldm_key] = tensor
        elif ldm_key.endswith(".weight") and tensor.dim() >= 2:
            module = ldm_key.removesuffix(".weight")
            down = torch.randn((rank, *tensor.shape[1:]), generator=generator) * 0.05
            up = torch.randn((tensor.shape[0], rank, *([1] * (tensor.dim() - 2))), generator=generator) * 0.05
            out[module + ".down"], out[module + ".up"] = down, up
            state[names[ldm_key]] = tensor + (up.flatten(1) @ down.flatten(1)).reshape(tensor.shape)
        else:  # norms and biases: trained in full
            changed = tensor + torch.randn(tensor.shape, generator=generator) * 0.01
            out[ldm_key] = changed
            state[names[ldm_key]] = changed
    save_file(_contiguous(out, torch.float32), str(target))
    model.load_state_dict(state)
    return model.eval()


ADAPTER_LAYOUTS = ("original", "diffusers", "folder")


def build_tiny_adapter(seed: int = 0, in_channels: int = 3, family: str = "sd1") -> T2IAdapter:
    """A full T2I-Adapter for the tiny checkpoints: one level per UNet down block (widths (32, 64)), two blocks
    per level, pixel-unshuffle by 2 (the tiny VAE's factor), seeded random weights."""
    torch.manual_seed(seed)
    model = T2IAdapter(in_channels=in_channels, channels=UNET_CHANNELS, num_res_blocks=2, downscale_factor=2,
                       adapter_type="full_adapter")
    return model.eval()


def adapter_to_original(model: T2IAdapter) -> dict[str, torch.Tensor]:
    """TencentARC's keys: `conv_in`, `body.K.block1/block2/in_conv` with K = level * blocks per level + block."""
    per_level = int(model.config.num_res_blocks)
    out = {}
    for key, value in model.state_dict().items():
        parts = key.removeprefix("adapter.").split(".")
        if parts[0] == "conv_in":
            out[".".join(parts)] = value
        elif parts[2] == "in_conv":
            out[f"body.{int(parts[1]) * per_level}.in_conv.{parts[3]}"] = value
        elif parts[2] == "resnets":
            out[f"body.{int(parts[1]) * per_level + int(parts[3])}.{parts[4]}.{parts[5]}"] = value
    return out


def write_tiny_adapter(path: str | Path, *, layout: str = "original", seed: int = 0, in_channels: int = 3,
                       dtype: torch.dtype = torch.float32) -> T2IAdapter:
    """Write a tiny T2I-Adapter in `layout` ("original", "diffusers" keys in one file, or a diffusers "folder");
    returns the model written."""
    model = build_tiny_adapter(seed, in_channels)
    _save(model, Path(path), layout,
          lambda: adapter_to_original(model) if layout == "original" else model.state_dict(), dtype)
    return model
