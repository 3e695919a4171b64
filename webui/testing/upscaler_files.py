"""Random-weight upscaler files in the key layouts users download (for tests and benchmarks)."""
from __future__ import annotations

from pathlib import Path

import torch


def realesrgan_rrdb_state_dict(num_feat: int = 16, num_grow: int = 32, blocks: int = 1, seed: int = 0) -> dict:
    """An RRDBNet x4 in Real-ESRGAN's key layout (`conv_first`, `body.N.rdbK.convM`, `conv_up1/2`, ...)."""
    gen = torch.Generator().manual_seed(seed)

    def conv(out_ch: int, in_ch: int) -> dict[str, torch.Tensor]:
        return {"weight": torch.randn(out_ch, in_ch, 3, 3, generator=gen) * 0.05, "bias": torch.zeros(out_ch)}

    layers: dict[str, dict[str, torch.Tensor]] = {"conv_first": conv(num_feat, 3)}
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(1, 6):
                out_ch = num_feat if c == 5 else num_grow
                layers[f"body.{b}.rdb{r}.conv{c}"] = conv(out_ch, num_feat + (c - 1) * num_grow)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        layers[name] = conv(num_feat, num_feat)
    layers["conv_last"] = conv(3, num_feat)
    return {f"{layer}.{param}": tensor for layer, params in layers.items() for param, tensor in params.items()}


def write_realesrgan_pth(path: Path, **kwargs) -> Path:
    """As Real-ESRGAN ships it: a pickle with the weights under `params_ema`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": realesrgan_rrdb_state_dict(**kwargs)}, path)
    return path
