"""Composable diffusion in a prompt: `a AND b:0.5` split into weighted sub-prompts.

Why its own module: AND is the one construct that works above the grammar (it ignores brackets), so it is a plain
split with its own rules, applied after the extra-network tags are out and before each part is scheduled.
"""
from __future__ import annotations

import re

_AND_RE = re.compile(r"\bAND\b")
_AND_WEIGHT_RE = re.compile(r"^(.*?)(?:\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)))?\s*$", re.S)


def split_and(prompt: str) -> list[tuple[str, float]]:
    """Split on the word `AND` (uppercase, whole word) into sub-prompts, each with an optional `:weight` suffix.

    As in A1111 the split ignores brackets (an `AND` inside `[...]` splits too) and a trailing `:number` is always
    a weight. Unlike A1111 the texts are stripped of surrounding whitespace, which the CLIP tokenizer drops anyway.
    """
    result: list[tuple[str, float]] = []
    for part in _AND_RE.split(prompt):
        match = _AND_WEIGHT_RE.match(part)
        if match is None:  # cannot happen: the pattern matches any string; kept for the type checker
            result.append((part.strip(), 1.0))
            continue
        weight = float(match.group(2)) if match.group(2) is not None else 1.0
        result.append((match.group(1).strip(), weight))
    return result
