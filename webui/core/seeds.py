"""Seed arithmetic as A1111 does it: -1 means random; in a batch, image i gets seed + i."""
from __future__ import annotations

import random

MAX_SEED = 2**32 - 1


def resolve_seed(seed: int, rng: random.Random | None = None) -> int:
    """A concrete seed: `seed` itself, or a random one for -1 (or any negative value)."""
    if seed is None or seed < 0:
        return (rng or random.SystemRandom()).randrange(0, MAX_SEED)
    return int(seed)


def batch_seeds(first_seed: int, count: int) -> list[int]:
    """Seeds of `count` consecutive images; wraps past 2**32-1 like a uint32."""
    return [(first_seed + i) % (MAX_SEED + 1) for i in range(count)]
