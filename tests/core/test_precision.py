"""The CPU fast path's choice: bfloat16 only where the CPU computes it natively, float32 when forced."""
from __future__ import annotations

import pytest

from webui.core.errors import ValidationError
from webui.core.precision import choose_cpu_precision


@pytest.mark.parametrize(("setting", "flags", "expected"), [
    ("auto", {"avx2", "avx512f"}, "float32"),
    ("auto", {"avx512_bf16"}, "bfloat16"),
    ("auto", {"AMX_BF16"}, "bfloat16"),
    ("float32", {"amx_bf16"}, "float32"),
    ("bfloat16", set(), "bfloat16"),
])
def test_choice(setting, flags, expected):
    choice = choose_cpu_precision(setting, flags)
    assert choice.denoiser == expected and choice.fast_path == (expected == "bfloat16")
    assert choice.reason.startswith(expected)


def test_unknown_setting_is_a_clear_error():
    with pytest.raises(ValidationError, match="--cpu-precision must be one of auto, bfloat16, float32"):
        choose_cpu_precision("fp8", set())
