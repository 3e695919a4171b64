"""T2I-Adapter files -> `diffusers.T2IAdapter`, offline.

Layouts users bring (the ControlNet extension lists them with the ControlNets in `models/ControlNet`):
- TencentARC's original release (`t2iadapter_canny_sd15v2.pth`, `t2iadapter_depth_sd14v1.pth`, ...): `conv_in`,
  then `body.K.block1` / `body.K.block2` (and `body.K.in_conv` where the width changes) for K = level *
  blocks-per-level + block; no config, so the shape of the architecture comes from the weights and from the
  loaded checkpoint (levels = its UNet's down blocks, the pixel-unshuffle factor = its VAE's downscale factor,
  which makes the first level's features the latents' size);
- the same model with diffusers keys (`adapter.conv_in`, `adapter.body.L.resnets.B.block1`, ...) in one file;
- diffusers folders (`config.json` with `"_class_name": "T2IAdapter"`), among them the SDXL adapters.

Only the "full" adapters (the ones the down blocks' widths come from) are read from single files; the "light"
colour adapter and the CLIP-vision style adapter are refused with a message.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers import T2IAdapter

from webui.core.errors import ModelLoadError
from webui.engine.models.detection import SD1, SDXL

ORIGINAL = "t2i-adapter"
DIFFUSERS = "t2i-adapter-diffusers"
_BODY_RE = re.compile(r"^body\.(\d+)\.(block1|block2|in_conv)\.(weight|bias)$")


def adapter_layout(keys: Mapping[str, object]) -> str | None:
    """The T2I-Adapter layout of a single file's keys, or None when it is not one."""
    if any(key.startswith("adapter.body.") for key in keys) and "adapter.conv_in.weight" in keys:
        return DIFFUSERS
    if "conv_in.weight" in keys and any(key.startswith("body.0.block1.") for key in keys):
        return ORIGINAL
    return None


def folder_family(config: Mapping[str, object]) -> str:
    """Single files are SD 1.x (TencentARC released them for SD 1.4/1.5); a folder's config says SDXL."""
    return SDXL if config.get("adapter_type") == "full_adapter_xl" else SD1


def _original_to_diffusers(state: Mapping[str, torch.Tensor], blocks_per_level: int) -> dict[str, torch.Tensor]:
    converted = {f"adapter.conv_in.{part}": state[f"conv_in.{part}"] for part in ("weight", "bias")}
    for key, value in state.items():
        match = _BODY_RE.match(key)
        if match is None:
            continue
        index, layer, part = int(match.group(1)), match.group(2), match.group(3)
        level, block = divmod(index, blocks_per_level)
        if layer == "in_conv":
            converted[f"adapter.body.{level}.in_conv.{part}"] = value
        else:
            converted[f"adapter.body.{level}.resnets.{block}.{layer}.{part}"] = value
    return converted


def build_adapter(state: Mapping[str, torch.Tensor], layout: str, unet_config: Mapping[str, object],
                  vae_scale_factor: int, name: str, dtype: torch.dtype) -> T2IAdapter:
    """A full T2I-Adapter for the loaded checkpoint from a single file's tensors."""
    unknown = [key for key in state if not (key.startswith("conv_in.") or _BODY_RE.match(key))] \
        if layout == ORIGINAL else []
    if unknown:
        raise ModelLoadError(f"'{name}' is not a full T2I-Adapter (unexpected weights such as {unknown[:2]}); the "
                             "light (colour) and style adapters are not supported.")
    widths = tuple(int(w) for w in unet_config["block_out_channels"])
    levels = len(widths)
    if layout == ORIGINAL:
        count = len({int(m.group(1)) for key in state if (m := _BODY_RE.match(key))})
        if count % levels:
            raise ModelLoadError(f"The T2I-Adapter '{name}' has {count} blocks, which do not split into the loaded "
                                 f"checkpoint's {levels} levels: it was made for another model.")
        per_level = count // levels
        converted = _original_to_diffusers(state, per_level)
    else:
        per_level = len({key.split(".")[4] for key in state if key.startswith("adapter.body.0.resnets.")})
        converted = dict(state)
    inputs = int(converted["adapter.conv_in.weight"].shape[1])
    if inputs % (vae_scale_factor ** 2):
        raise ModelLoadError(f"The T2I-Adapter '{name}' takes {inputs} input channels, which do not fit the loaded "
                             f"checkpoint's latent scale ({vae_scale_factor}x).")
    try:
        model = T2IAdapter(in_channels=inputs // vae_scale_factor ** 2, channels=widths,
                           num_res_blocks=per_level, downscale_factor=vae_scale_factor, adapter_type="full_adapter")
        model.load_state_dict(converted, strict=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"The T2I-Adapter '{name}' does not fit the loaded checkpoint's UNet (block widths "
                             f"{widths}): {exc}") from exc
    return (model if model.dtype == dtype else model.to(dtype)).eval()


def load_adapter_folder(folder: Path, dtype: torch.dtype) -> T2IAdapter:
    try:
        return T2IAdapter.from_pretrained(folder, local_files_only=True, torch_dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"The T2I-Adapter folder '{folder.name}' could not be loaded: {exc}") from exc
