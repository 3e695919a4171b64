"""Speed options applied to a loaded pipeline's denoiser (the UNet, or the transformer of a flow model): the CPU
bfloat16 fast path and `--compile`.

Why casts at the denoiser's boundary and not `torch.autocast`: autocast would keep float32 weights and cast them
to bfloat16 in every matmul of every step; weights stored in bfloat16 are converted once, at load. The boundary
hooks hand the denoiser bfloat16 inputs and give float32 back, so everything around it (text encoder, scheduler
arithmetic, latents, VAE) stays float32 and the pipelines need no change.

Why `torch.compile` on `forward` and not on the module: forward hooks (the live preview, the bfloat16 casts,
accelerate's offload hooks) stay outside the compiled graph, so adding or removing one does not recompile; parameters
are graph inputs (PyTorch >= 2.5 inlines built-in modules), so LoRA weights changed in place are used without
recompiling.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

_CAST_ATTR = "_webui_boundary_dtypes"
_COMPILED_ATTR = "_webui_compiled"


def denoiser_of(pipe) -> torch.nn.Module:
    """The module that runs once per sampling step: `unet` (SD families) or `transformer` (flow families)."""
    module = getattr(pipe, "unet", None)
    return module if module is not None else pipe.transformer


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() and value.dtype != dtype else value
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value


def _output_cast(value: Any, dtype: torch.dtype) -> Any:
    """Cast a denoiser's result back: a tensor, a tuple (return_dict=False) or diffusers' output dataclass."""
    if isinstance(value, torch.Tensor) or isinstance(value, (list, tuple)):
        return _cast(value, dtype)
    if hasattr(value, "sample") and isinstance(value.sample, torch.Tensor):
        value.sample = _cast(value.sample, dtype)
    return value


def run_in_dtype(denoiser: torch.nn.Module, dtype: torch.dtype, io_dtype: torch.dtype) -> None:
    """Store `denoiser`'s weights in `dtype` while its callers keep working in `io_dtype`. Idempotent."""
    if getattr(denoiser, _CAST_ATTR, None) == (dtype, io_dtype):
        return
    denoiser.to(dtype)

    def before(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return _cast(args, dtype), _cast(kwargs, dtype)

    def after(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        return _output_cast(output, io_dtype)

    # prepend: the casts come before any other pre-hook (the live preview reads the sample in its own dtype).
    denoiser.register_forward_pre_hook(before, with_kwargs=True, prepend=True)
    denoiser.register_forward_hook(after, with_kwargs=True)
    setattr(denoiser, _CAST_ATTR, (dtype, io_dtype))


def working_dtype(pipe) -> torch.dtype:
    """The dtype of the tensors around the denoiser (latents, prompt embeddings): its inputs' dtype when the
    bfloat16 fast path casts at its boundary, else its weights' dtype."""
    denoiser = denoiser_of(pipe)
    boundary = getattr(denoiser, _CAST_ATTR, None)
    return boundary[1] if boundary is not None else next(denoiser.parameters()).dtype


def compile_denoiser(denoiser: torch.nn.Module, device_type: str, cache_dir: Path | None = None,
                     backend: str = "inductor") -> bool:
    """`--compile`: compile the denoiser's forward (inductor unless `backend` says otherwise), kept across
    generations; the FX graph cache in `cache_dir` keeps the compiled kernels across restarts. Returns False
    when it was compiled already.

    The first two calls are measured (one eager call, then the compiling one, then a compiled one) and the cost
    and benefit are logged, so a user sees on the first image whether the flag pays off on their machine."""
    if getattr(denoiser, _COMPILED_ATTR, False):
        return False
    if cache_dir is not None:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir))
    eager = denoiser.forward
    # dynamic=None: the first size compiles static; a second size recompiles once with dynamic shapes.
    compiled = torch.compile(eager, backend=backend, dynamic=None)
    denoiser.forward = _Measured(denoiser, eager, compiled, type(denoiser).__name__, device_type)
    setattr(denoiser, _COMPILED_ATTR, True)
    return True


def is_compiled(denoiser: torch.nn.Module) -> bool:
    return bool(getattr(denoiser, _COMPILED_ATTR, False))


class _Measured:
    """The compiled forward, timed on its first call against one eager call with the same inputs; afterwards it
    puts the plain compiled function in its place (no cost on later steps)."""

    def __init__(self, module: torch.nn.Module, eager, compiled, name: str, device_type: str):
        self._module, self._eager, self._compiled = module, eager, compiled
        self._name, self._device_type = name, device_type

    def __call__(self, *args, **kwargs):
        eager_s, _ = _timed(self._eager, args, kwargs)
        first_s, _ = _timed(self._compiled, args, kwargs)
        steady_s, out = _timed(self._compiled, args, kwargs)
        self._module.forward = self._compiled
        log.warning("--compile (%s on %s): compiling took %.1f s; one call: eager %.3f s, compiled %.3f s "
                    "(%.2fx). Paid again for each new image size and model.", self._name, self._device_type,
                    max(0.0, first_s - steady_s), eager_s, steady_s, eager_s / max(steady_s, 1e-9))
        return out


def _timed(fn, args: tuple, kwargs: dict) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out
