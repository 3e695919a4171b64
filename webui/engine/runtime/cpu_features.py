"""The CPU's feature flags, read once at start (for the CPU fast path in `webui/core/precision.py`).

Why /proc/cpuinfo and not torch: torch reports only its dispatch level (AVX2/AVX512), not whether the CPU has the
bfloat16 dot-product instructions that make bfloat16 faster than float32. Elsewhere (macOS, Windows) no flags are
read and `auto` stays on float32, the safe choice.
"""
from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The `flags` of the first CPU in `cpuinfo` (empty when the file is missing or unreadable)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM spelling
            return frozenset(value.split())
    return frozenset()
