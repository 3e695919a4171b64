"""Initial noise, A1111-style: generated on the CPU from one generator per image, so an image depends only on its
own seed (not on batch size or device); variation seeds mix in a second noise by spherical interpolation; "resize
seed from" draws the noise at another size and pastes it centred, so a composition survives a size change."""
from __future__ import annotations

import torch


def seeded_randn(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)))


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from `low` (strength 0) to `high` (strength 1), per channel row as A1111."""
    low_flat, high_flat = low.reshape(low.shape[0], -1), high.reshape(high.shape[0], -1)
    low_norm = low_flat / low_flat.norm(dim=1, keepdim=True)
    high_norm = high_flat / high_flat.norm(dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:  # nearly parallel: plain linear interpolation is exact enough and stable
        return low * (1 - strength) + high * strength
    omega = torch.acos(dot)
    so = torch.sin(omega)
    mixed = (torch.sin((1.0 - strength) * omega) / so).unsqueeze(1) * low_flat + \
            (torch.sin(strength * omega) / so).unsqueeze(1) * high_flat
    return mixed.reshape(low.shape)


def _paste_centred(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Copy the overlapping centre of `source` into `target` (both [C, H, W])."""
    dy = (target.shape[1] - source.shape[1]) // 2
    dx = (target.shape[2] - source.shape[2]) // 2
    h = source.shape[1] if dy >= 0 else target.shape[1]
    w = source.shape[2] if dx >= 0 else target.shape[2]
    ty, tx, sy, sx = max(dy, 0), max(dx, 0), max(-dy, 0), max(-dx, 0)
    target[:, ty:ty + h, tx:tx + w] = source[:, sy:sy + h, sx:sx + w]
    return target


def image_noise(seed: int, shape: tuple[int, int, int], *, subseed: int | None = None, subseed_strength: float = 0.0,
                resize_from: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Noise of `shape` [C, H, W] for one image."""
    noise_shape = resize_from if resize_from and resize_from != shape else shape
    noise = seeded_randn(seed, noise_shape)
    if subseed is not None and subseed_strength > 0:
        noise = slerp(subseed_strength, noise, seeded_randn(subseed, noise_shape))
    if noise_shape != shape:
        noise = _paste_centred(seeded_randn(seed, shape), noise)
    return noise


def batch_noise(seeds: list[int], shape: tuple[int, int, int], *, subseeds: list[int] | None = None,
                subseed_strength: float = 0.0, resize_from: tuple[int, int, int] | None = None) -> torch.Tensor:
    return torch.stack([
        image_noise(seed, shape, subseed=subseeds[i] if subseeds else None, subseed_strength=subseed_strength,
                    resize_from=resize_from)
        for i, seed in enumerate(seeds)
    ])
