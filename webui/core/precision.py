"""Which number format the denoiser (UNet or transformer) runs in on a CPU: the CPU fast path, decided once at start.

Why bfloat16 only on some CPUs: on a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX) one SD1.5 UNet step
at 256 px was measured 2.2x faster in bfloat16 than in float32 (3.1 s -> 1.42 s). Without those instructions the
CPU converts every value in software and bfloat16 is slower than float32, so `auto` keeps float32 there.
Why only the denoiser: it is where the time goes (>90% of a txt2img), while the text encoder, the scheduler's
arithmetic and the VAE stay in float32: the latents the scheduler updates never lose precision between steps and
the VAE (whose decoder is the part most harmed by low precision) decodes in full precision. The quality cost is
measured by `tests/engine/test_cpu_fast_path.py` and documented in `benchmarks/README.md`.

Pure: the CPU's feature flags come in as strings (from /proc/cpuinfo on Linux).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from webui.core.errors import ValidationError

AUTO = "auto"
BFLOAT16 = "bfloat16"
FLOAT32 = "float32"
CPU_PRECISIONS = (AUTO, BFLOAT16, FLOAT32)

# CPU feature flags (as Linux names them) that mean native bfloat16 dot products.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class PrecisionChoice:
    """The denoiser's format on this device and the reason, shown in the UI and /sdapi/v1/cmd-flags."""

    denoiser: str
    reason: str

    @property
    def fast_path(self) -> bool:
        return self.denoiser == BFLOAT16


def native_bf16(cpu_flags: Iterable[str]) -> str | None:
    """The first flag in `cpu_flags` that gives native bfloat16 arithmetic, or None."""
    flags = {flag.lower() for flag in cpu_flags}
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


def choose_cpu_precision(setting: str, cpu_flags: Iterable[str]) -> PrecisionChoice:
    """The denoiser format for a CPU. `setting`: `auto` (bfloat16 when the CPU has native bfloat16, else float32),
    `bfloat16` (forced, e.g. to measure it), `float32` (`--no-half` / `--precision full`)."""
    if setting not in CPU_PRECISIONS:
        raise ValidationError(f"--cpu-precision must be one of {', '.join(CPU_PRECISIONS)} (got {setting!r}).")
    if setting == FLOAT32:
        return PrecisionChoice(FLOAT32, "float32 (full precision requested)")
    if setting == BFLOAT16:
        return PrecisionChoice(BFLOAT16, "bfloat16 (requested with --cpu-precision bfloat16)")
    flag = native_bf16(cpu_flags)
    if flag is None:
        return PrecisionChoice(FLOAT32, "float32 (this CPU has no native bfloat16: avx512_bf16 or amx_bf16)")
    return PrecisionChoice(BFLOAT16, f"bfloat16 UNet/transformer, float32 text encoder and VAE (CPU has {flag})")
