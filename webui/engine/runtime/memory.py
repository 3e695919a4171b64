"""A1111's memory, precision and attention flags, applied to every loaded pipeline with diffusers' own mechanisms.

Why two halves: which mechanism a flag selects depends on the device, the precision and the model family (known
only after a load), and getting that choice right is the part users care about; so `plan_memory` is a pure
function (flags + device + family -> named actions and notes) tested flag by flag, and `MemoryOptimizer` only
carries the plan out. Offloading needs a CUDA GPU: without one the offload flags are reported, never fatal.

Flag -> mechanism:
- `--medvram` -> `pipe.enable_model_cpu_offload()`; `--medvram-sdxl` the same for SDXL models only;
  `--lowvram` -> `pipe.enable_sequential_cpu_offload()` (wins over `--medvram`).
- `--no-half-vae` -> the VAE in float32 beside a float16 UNet (torch pre/post hooks cast at its boundaries).
- `--upcast-sampling` -> float16 weights, attention scores upcast (`Attention.upcast_attention/upcast_softmax`,
  honoured by diffusers' classic and sliced processors; SDPA already accumulates in float32).
- attention: `--xformers` (when `xformers` imports, on CUDA) > `--opt-split-attention` (attention slicing) >
  `--opt-sdp-attention` (`AttnProcessor2_0`) > `--disable-opt-split-attention` (classic `AttnProcessor`);
  without any, diffusers' default (SDPA on PyTorch 2) stays.
- `--opt-channelslast` -> `unet.to(memory_format=torch.channels_last)`.
- options `vae_tiling` / `vae_slicing` (config.json) -> `vae.enable_tiling()` / `vae.enable_slicing()`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from webui.core.settings import MemoryFlags, Settings
from webui.engine.models.detection import SDXL
from webui.engine.runtime.devices import DeviceConfig
from webui.engine.runtime.fast_paths import compile_denoiser, denoiser_of, run_in_dtype, working_dtype

log = logging.getLogger(__name__)

# Action names (what `plan_memory` selects and `MemoryOptimizer.apply` carries out).
TO_DEVICE = "to_device"
MODEL_OFFLOAD = "model_cpu_offload"
SEQUENTIAL_OFFLOAD = "sequential_cpu_offload"
VAE_FP32 = "vae_fp32"
UPCAST_ATTENTION = "upcast_attention"
XFORMERS = "xformers_attention"
SDP_ATTENTION = "sdp_attention"
ATTENTION_SLICING = "attention_slicing"
CLASSIC_ATTENTION = "classic_attention"
CHANNELS_LAST = "channels_last"
VAE_TILING = "vae_tiling"
VAE_SLICING = "vae_slicing"
DENOISER_BF16 = "denoiser_bfloat16"
COMPILE = "compile"

ATTENTION_ACTIONS = (XFORMERS, ATTENTION_SLICING, SDP_ATTENTION, CLASSIC_ATTENTION)
OFFLOAD_ACTIONS = (MODEL_OFFLOAD, SEQUENTIAL_OFFLOAD)
_OFFLOAD_DEVICES = ("cuda",)
_HOOKS_ATTR = "_webui_fp32_vae_hooks"


@dataclass(frozen=True)
class MemoryOptions:
    """Everything the plan depends on besides the model: the flags, the device and whether weights are float16."""

    flags: MemoryFlags = dataclasses.field(default_factory=MemoryFlags)
    device: str = "cpu"
    half: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    denoiser_bf16: bool = False  # the CPU fast path (webui/core/precision.py)

    @classmethod
    def from_settings(cls, settings: Settings, device: DeviceConfig) -> MemoryOptions:
        return cls(flags=settings.memory, device=str(device.device), half=device.dtype == torch.float16,
                   denoiser_bf16=device.split_denoiser and device.denoiser_dtype == torch.bfloat16)

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]


@dataclass(frozen=True)
class MemoryPlan:
    """The named actions for one pipeline, in the order they are applied, and notes for the user."""

    actions: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def attention(self) -> str | None:
        return next((a for a in self.actions if a in ATTENTION_ACTIONS), None)


def _placement(flags: MemoryFlags, device_type: str, family: str, notes: list[str]) -> str:
    wanted = [flag for flag, on in (("--lowvram", flags.lowvram), ("--medvram", flags.medvram),
                                    ("--medvram-sdxl", flags.medvram_sdxl)) if on]
    if device_type not in _OFFLOAD_DEVICES:
        notes += [f"no GPU: {flag} has no effect (CPU offloading needs a CUDA device)." for flag in wanted]
        return TO_DEVICE
    if flags.lowvram:
        return SEQUENTIAL_OFFLOAD
    if flags.medvram or (flags.medvram_sdxl and family == SDXL):
        return MODEL_OFFLOAD
    return TO_DEVICE


def _attention(flags: MemoryFlags, device_type: str, xformers_available: bool, notes: list[str]) -> str | None:
    if flags.xformers:
        if xformers_available and device_type == "cuda":
            return XFORMERS
        why = "xformers is not installed" if not xformers_available else "xformers needs a CUDA GPU"
        notes.append(f"{why}: --xformers has no effect; PyTorch's scaled-dot-product attention (SDPA) is used.")
    if flags.opt_split_attention:
        return ATTENTION_SLICING
    if flags.opt_sdp_attention or flags.xformers:
        return SDP_ATTENTION
    if flags.disable_opt_split_attention:
        return CLASSIC_ATTENTION
    return None


def plan_memory(options: MemoryOptions, family: str, *, xformers_available: bool = False) -> MemoryPlan:
    """Which diffusers mechanisms the flags select for a `family` model on `options.device`. Pure: no torch calls.

    Order matters: precision and memory format change the weights, so they come before offloading (which moves
    the weights to the CPU behind hooks)."""
    flags, device_type = options.flags, options.device_type
    notes: list[str] = []
    actions: list[str] = []
    if flags.no_half_vae:
        if options.half:
            actions.append(VAE_FP32)
        else:
            notes.append("--no-half-vae: the VAE already runs in float32 (full precision on this device).")
    attention = _attention(flags, device_type, xformers_available, notes)
    if attention is not None:
        actions.append(attention)
    if flags.upcast_sampling:
        if options.half:
            actions.append(UPCAST_ATTENTION)
        else:
            notes.append("--upcast-sampling has no effect: the model already runs in float32.")
    if options.denoiser_bf16:
        actions.append(DENOISER_BF16)
    if flags.opt_channelslast:
        actions.append(CHANNELS_LAST)
    if options.vae_tiling:
        actions.append(VAE_TILING)
    if options.vae_slicing:
        actions.append(VAE_SLICING)
    actions.append(_placement(flags, device_type, family, notes))
    if flags.compile:
        actions.append(COMPILE)  # last: it wraps the forward of the weights as placed
    return MemoryPlan(tuple(actions), tuple(notes))


def xformers_available() -> bool:
    """Whether the optional `xformers` package is installed (checked without importing it)."""
    return importlib.util.find_spec("xformers") is not None


# ----- carrying a plan out -----------------------------------------------------------------------------------------


def _cast_args(dtype: torch.dtype):
    def hook(module: torch.nn.Module, args: tuple) -> tuple:
        return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)

    return hook


def _cast_output(dtype: torch.dtype):
    def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output.to(dtype) if isinstance(output, torch.Tensor) else output

    return hook


def keep_vae_fp32(vae: torch.nn.Module, compute_dtype: torch.dtype) -> None:
    """`--no-half-vae`: the VAE's weights in float32 while the UNet stays float16.

    Diffusers' SD pipelines hand the VAE latents in the UNet's dtype and expect encoded latents back in it, so the
    boundaries cast: inputs of the encoder and of the decoder side go to float32, the encoder's moments come
    back in `compute_dtype`. Idempotent (a VAE already converted keeps its hooks)."""
    if getattr(vae, _HOOKS_ATTR, None):
        return
    vae.to(torch.float32)
    decode_entry = getattr(vae, "post_quant_conv", None) or vae.decoder
    encode_exit = getattr(vae, "quant_conv", None) or vae.encoder
    handles = [vae.encoder.register_forward_pre_hook(_cast_args(torch.float32)),
               decode_entry.register_forward_pre_hook(_cast_args(torch.float32)),
               encode_exit.register_forward_hook(_cast_output(compute_dtype))]
    if decode_entry is not vae.decoder:
        handles.append(vae.decoder.register_forward_pre_hook(_cast_args(torch.float32)))
    setattr(vae, _HOOKS_ATTR, handles)


def _attention_modules(model: torch.nn.Module):
    from diffusers.models.attention_processor import Attention

    return [m for m in model.modules() if isinstance(m, Attention)]


def set_attention(pipe, action: str) -> None:
    """One attention implementation on the UNet and VAE (each call replaces the previous one)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    if action == XFORMERS:
        try:
            pipe.enable_xformers_memory_efficient_attention()
            return
        except (ImportError, ValueError, RuntimeError) as exc:  # installed, but built for another torch/CUDA
            log.warning("xformers could not be enabled (%s); using PyTorch's SDPA attention.", exc)
            action = SDP_ATTENTION
    if action == ATTENTION_SLICING:
        pipe.enable_attention_slicing("auto")
    else:
        processor = AttnProcessor2_0 if action == SDP_ATTENTION else AttnProcessor
        # A flow transformer (AuraFlow, Flux) keeps its own attention processors; only UNets and the VAE switch.
        for model in (m for m in (getattr(pipe, "unet", None), pipe.vae) if m is not None):
            if _attention_modules(model):
                model.set_attn_processor(processor())


def upcast_attention(unet: torch.nn.Module) -> None:
    for module in _attention_modules(unet):
        module.upcast_attention = True
        module.upcast_softmax = True


def is_offloaded(pipe) -> bool:
    """Whether accelerate offload hooks are attached to any component."""
    return any(hasattr(component, "_hf_hook") for component in pipe.components.values()
               if isinstance(component, torch.nn.Module))


class MemoryOptimizer:
    """Applies the launch flags to every pipeline the `PipelineManager` makes active (after each load or VAE
    switch). `vae_options` reads the runtime options (`vae_tiling`, `vae_slicing`) at each apply."""

    def __init__(self, options: MemoryOptions, vae_options: Callable[[], tuple[bool, bool]] | None = None,
                 xformers_check: Callable[[], bool] = xformers_available, compile_cache: Path | None = None):
        self.options = options
        self._compile_cache = compile_cache
        self._vae_options = vae_options or (lambda: (False, False))
        self._xformers_check = xformers_check
        self._reported: set[str] = set()
        self.last_plan: MemoryPlan | None = None

    @property
    def device(self) -> torch.device:
        return torch.device(self.options.device)

    def offloading(self) -> bool:
        """Whether an offload flag may apply on this device (then weights are loaded to the CPU first, so a
        low-VRAM GPU never has to hold the whole model)."""
        flags = self.options.flags
        return self.options.device_type in _OFFLOAD_DEVICES and (flags.lowvram or flags.medvram or
                                                                 flags.medvram_sdxl)

    def load_device(self) -> torch.device:
        return torch.device("cpu") if self.offloading() else self.device

    def plan(self, family: str) -> MemoryPlan:
        tiling, slicing = self._vae_options()
        options = dataclasses.replace(self.options, vae_tiling=bool(tiling), vae_slicing=bool(slicing))
        return plan_memory(options, family, xformers_available=self._xformers_check())

    def apply(self, pipe, family: str) -> MemoryPlan:
        """Carry out the plan for `pipe`. Safe to call again on the same pipeline (after a VAE switch or an
        option change): offload hooks are removed first and every action is idempotent."""
        plan = self.plan(family)
        self.detach(pipe)
        for action in plan.actions:
            self._do(pipe, action)
        if VAE_TILING not in plan.actions:
            pipe.vae.disable_tiling()
        if VAE_SLICING not in plan.actions:
            pipe.vae.disable_slicing()
        self._report(plan)
        self.last_plan = plan
        return plan

    def detach(self, pipe) -> None:
        """Remove offload hooks (weights come back to the CPU), e.g. before a pipeline goes to the RAM cache."""
        if is_offloaded(pipe):
            pipe.remove_all_hooks()

    def _do(self, pipe, action: str) -> None:
        if action == TO_DEVICE:
            pipe.to(self.device)
        elif action == MODEL_OFFLOAD:
            pipe.enable_model_cpu_offload(device=self.device)
        elif action == SEQUENTIAL_OFFLOAD:
            pipe.enable_sequential_cpu_offload(device=self.device)
        elif action == VAE_FP32:
            keep_vae_fp32(pipe.vae, working_dtype(pipe))
        elif action in ATTENTION_ACTIONS:
            set_attention(pipe, action)
        elif action == UPCAST_ATTENTION:
            upcast_attention(denoiser_of(pipe))
        elif action == CHANNELS_LAST and getattr(pipe, "unet", None) is not None:  # a UNet-only layout choice
            pipe.unet.to(memory_format=torch.channels_last)
        elif action == DENOISER_BF16:
            run_in_dtype(denoiser_of(pipe), torch.bfloat16, io_dtype=torch.float32)
        elif action == COMPILE:
            compile_denoiser(denoiser_of(pipe), self.options.device_type, self._compile_cache,
                             self.options.flags.compile_backend)
        elif action == VAE_TILING:
            pipe.vae.enable_tiling()
        elif action == VAE_SLICING:
            pipe.vae.enable_slicing()

    def _report(self, plan: MemoryPlan) -> None:
        for note in plan.notes:
            if note not in self._reported:
                self._reported.add(note)
                log.warning(note)
        log.info("Memory/attention set-up: %s", ", ".join(plan.actions))
