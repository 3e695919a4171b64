"""Launcher memory/attention flags: the pure plan for every flag, and the mechanisms that run on a CPU checked by
inspecting the pipeline (attention processors, memory format, VAE dtype/tiling/slicing)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, SlicedAttnProcessor

from tests.conftest import make_data_dir, make_settings
from webui.core.settings import MemoryFlags
from webui.engine.generation.live_preview import LatentPreview, latents_to_rgb
from webui.engine.models.detection import SD1, SDXL
from webui.engine.runtime.memory import (
    ATTENTION_SLICING,
    CHANNELS_LAST,
    CLASSIC_ATTENTION,
    MODEL_OFFLOAD,
    SDP_ATTENTION,
    SEQUENTIAL_OFFLOAD,
    TO_DEVICE,
    UPCAST_ATTENTION,
    VAE_FP32,
    VAE_SLICING,
    VAE_TILING,
    XFORMERS,
    MemoryOptimizer,
    MemoryOptions,
    keep_vae_fp32,
    plan_memory,
)

CUDA_HALF = MemoryOptions(device="cuda", half=True)
CPU = MemoryOptions(device="cpu", half=False)


def plan(flags: MemoryFlags, options: MemoryOptions = CUDA_HALF, family: str = SD1, xformers: bool = False):
    return plan_memory(dataclasses.replace(options, flags=flags), family, xformers_available=xformers)


# ----- the pure plan, flag by flag ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "family", "expected"), [
    (MemoryFlags(), SD1, (TO_DEVICE,)),
    (MemoryFlags(medvram=True), SD1, (MODEL_OFFLOAD,)),
    (MemoryFlags(medvram=True), SDXL, (MODEL_OFFLOAD,)),
    (MemoryFlags(medvram_sdxl=True), SDXL, (MODEL_OFFLOAD,)),
    (MemoryFlags(medvram_sdxl=True), SD1, (TO_DEVICE,)),
    (MemoryFlags(lowvram=True), SD1, (SEQUENTIAL_OFFLOAD,)),
    (MemoryFlags(lowvram=True, medvram=True), SD1, (SEQUENTIAL_OFFLOAD,)),
    (MemoryFlags(no_half_vae=True), SD1, (VAE_FP32, TO_DEVICE)),
    (MemoryFlags(upcast_sampling=True), SD1, (UPCAST_ATTENTION, TO_DEVICE)),
    (MemoryFlags(opt_sdp_attention=True), SD1, (SDP_ATTENTION, TO_DEVICE)),
    (MemoryFlags(opt_split_attention=True), SD1, (ATTENTION_SLICING, TO_DEVICE)),
    (MemoryFlags(disable_opt_split_attention=True), SD1, (CLASSIC_ATTENTION, TO_DEVICE)),
    (MemoryFlags(opt_channelslast=True), SD1, (CHANNELS_LAST, TO_DEVICE)),
    (MemoryFlags(opt_split_attention=True, opt_sdp_attention=True), SD1, (ATTENTION_SLICING, TO_DEVICE)),
    (MemoryFlags(no_half_vae=True, opt_channelslast=True, medvram=True), SDXL,
     (VAE_FP32, CHANNELS_LAST, MODEL_OFFLOAD)),
])
def test_plan_on_a_cuda_gpu_in_half_precision(flags, family, expected):
    result = plan(flags, family=family)
    assert result.actions == expected
    assert result.notes == ()


def test_xformers_when_installed_else_sdpa_with_a_note():
    assert plan(MemoryFlags(xformers=True), xformers=True).actions == (XFORMERS, TO_DEVICE)
    missing = plan(MemoryFlags(xformers=True), xformers=False)
    assert missing.actions == (SDP_ATTENTION, TO_DEVICE)
    assert "xformers is not installed" in missing.notes[0] and "SDPA" in missing.notes[0]
    # --xformers beats --opt-split-attention when it can run; otherwise slicing was asked for explicitly.
    assert plan(MemoryFlags(xformers=True, opt_split_attention=True), xformers=True).attention() == XFORMERS
    assert plan(MemoryFlags(xformers=True, opt_split_attention=True)).attention() == ATTENTION_SLICING


@pytest.mark.parametrize("flag", ["medvram", "medvram_sdxl", "lowvram"])
def test_offload_flags_without_a_gpu_are_reported_not_fatal(flag):
    result = plan(MemoryFlags(**{flag: True}), options=CPU, family=SDXL)
    assert result.actions == (TO_DEVICE,)
    assert result.notes == (f"no GPU: --{flag.replace('_', '-')} has no effect (CPU offloading needs a CUDA "
                            "device).",)


def test_precision_flags_in_full_precision_are_noted():
    result = plan(MemoryFlags(no_half_vae=True, upcast_sampling=True), options=CPU)
    assert result.actions == (TO_DEVICE,)
    assert any("--no-half-vae" in note for note in result.notes)
    assert any("--upcast-sampling" in note for note in result.notes)


def test_xformers_on_cpu_falls_back_to_sdpa():
    result = plan(MemoryFlags(xformers=True), options=CPU, xformers=True)
    assert result.actions == (SDP_ATTENTION, TO_DEVICE)
    assert "needs a CUDA GPU" in result.notes[0]


def test_vae_tiling_and_slicing_options():
    options = dataclasses.replace(CPU, vae_tiling=True, vae_slicing=True)
    assert plan(MemoryFlags(), options=options).actions == (VAE_TILING, VAE_SLICING, TO_DEVICE)


def test_device_id_and_load_device():
    optimizer = MemoryOptimizer(MemoryOptions(flags=MemoryFlags(medvram=True), device="cuda:1", half=True))
    assert optimizer.device == torch.device("cuda:1")
    assert optimizer.offloading() and optimizer.load_device() == torch.device("cpu")
    cpu = MemoryOptimizer(MemoryOptions(flags=MemoryFlags(lowvram=True), device="cpu"))
    assert not cpu.offloading() and cpu.load_device() == torch.device("cpu")
    plain = MemoryOptimizer(MemoryOptions(device="cuda:0", half=True))
    assert plain.load_device() == torch.device("cuda:0")


def test_settings_feed_memory_options(tmp_path):
    import launch
    from webui.engine.runtime.devices import DeviceConfig

    settings = launch.build_settings(["--data-dir", str(tmp_path), "--use-cpu", "all", "--medvram", "--xformers",
                                      "--opt-channelslast", "--no-half-vae", "--force-enable-xformers"])
    options = MemoryOptions.from_settings(settings, DeviceConfig.from_settings(settings.device, False))
    assert options.flags == MemoryFlags(medvram=True, xformers=True, opt_channelslast=True, no_half_vae=True)
    assert options.device == "cpu" and not options.half


# ----- the CPU-runnable mechanisms on a real (tiny) pipeline --------------------------------------------------------

@pytest.fixture(scope="module")
def loaded(tmp_path_factory, tiny_checkpoints):
    """A tiny SD1 pipeline loaded through services (so the optimizer runs after the load, as in the app)."""
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("memory-flags"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    yield services
    services.runtime.executor.shutdown()


def processors(model: torch.nn.Module) -> set[type]:
    return {type(p) for p in model.attn_processors.values()}


def apply(services, flags: MemoryFlags, vae_tiling: bool = False, vae_slicing: bool = False):
    """Re-apply the optimizer with other flags to the loaded pipeline (on the worker, like a load does); the VAE
    options come from config.json as in the app."""
    manager = services.runtime.manager
    manager.memory.options = dataclasses.replace(manager.memory.options, flags=flags)
    services.options.update({"vae_tiling": vae_tiling, "vae_slicing": vae_slicing})
    active = manager.require()
    return services.runtime.executor.run(lambda token, progress: manager.memory.apply(active.pipeline,
                                                                               active.loaded.family))


def test_load_applies_the_plan(loaded):
    assert loaded.runtime.manager.memory.last_plan.actions == (TO_DEVICE,)


def test_attention_choices_set_the_processors(loaded):
    pipe = loaded.runtime.manager.require().pipeline
    apply(loaded, MemoryFlags(opt_split_attention=True))
    assert processors(pipe.unet) == {SlicedAttnProcessor}
    apply(loaded, MemoryFlags(opt_sdp_attention=True))
    assert processors(pipe.unet) == {AttnProcessor2_0}
    assert processors(pipe.vae) <= {AttnProcessor2_0}
    apply(loaded, MemoryFlags(disable_opt_split_attention=True))
    assert processors(pipe.unet) == {AttnProcessor}
    apply(loaded, MemoryFlags(xformers=True))  # not installed here: SDPA stays, with a note
    assert processors(pipe.unet) == {AttnProcessor2_0}
    assert "xformers" in loaded.runtime.manager.memory.last_plan.notes[0]


def test_channels_last_and_vae_tiling_slicing(loaded):
    pipe = loaded.runtime.manager.require().pipeline
    apply(loaded, MemoryFlags(opt_channelslast=True), vae_tiling=True, vae_slicing=True)
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    apply(loaded, MemoryFlags())
    assert not pipe.vae.use_tiling and not pipe.vae.use_slicing


def test_vae_options_from_config_are_applied(loaded):
    memory = loaded.runtime.manager.memory
    memory.options = dataclasses.replace(memory.options, flags=MemoryFlags())
    loaded.options.set_options({"vae_tiling": True})
    assert loaded.runtime.manager.require().pipeline.vae.use_tiling
    loaded.options.set_options({"vae_tiling": False})
    assert not loaded.runtime.manager.require().pipeline.vae.use_tiling


def test_offload_flags_on_cpu_generate_normally(loaded):
    plan_ = apply(loaded, MemoryFlags(medvram=True, lowvram=True))
    assert plan_.actions == (TO_DEVICE,) and len(plan_.notes) == 2
    from webui.core.requests import GenerationRequest

    result = loaded.generation.txt2img(GenerationRequest(prompt="x", steps=1, width=32, height=32, seed=1,
                                                         save_images=False))
    assert result.images[0].image.size == (32, 32)
    apply(loaded, MemoryFlags())


def test_upcast_attention_sets_the_attention_flags(loaded):
    from diffusers.models.attention_processor import Attention

    pipe = loaded.runtime.manager.require().pipeline
    loaded.runtime.manager.memory.options = dataclasses.replace(loaded.runtime.manager.memory.options, half=True)
    try:
        apply(loaded, MemoryFlags(upcast_sampling=True))
        modules = [m for m in pipe.unet.modules() if isinstance(m, Attention)]
        assert modules and all(m.upcast_attention and m.upcast_softmax for m in modules)
    finally:
        loaded.runtime.manager.memory.options = dataclasses.replace(loaded.runtime.manager.memory.options, half=False)


def test_no_half_vae_keeps_the_vae_in_float32_beside_a_float16_unet(tiny_checkpoints, tmp_path):
    """--no-half-vae on a float16 pipeline: the VAE decodes float16 latents and encodes back to float16."""
    from webui.engine.models.loader import load_checkpoint

    pipe = load_checkpoint(tiny_checkpoints["sd1"], cache_dir=tmp_path, device=torch.device("cpu"),
                           dtype=torch.float16).pipeline
    keep_vae_fp32(pipe.vae, torch.float16)
    keep_vae_fp32(pipe.vae, torch.float16)  # idempotent: one set of hooks
    assert pipe.vae.dtype == torch.float32 and pipe.unet.dtype == torch.float16
    latents = torch.randn(1, 4, 4, 4, dtype=torch.float16)
    with torch.inference_mode():
        decoded = pipe.vae.decode(latents).sample
        encoded = pipe.vae.encode(decoded.half()).latent_dist.mode()
    assert decoded.dtype == torch.float32 and encoded.dtype == torch.float16


# ----- live preview (used by /sdapi/v1/progress) ---------------------------------------------------------------------

def test_latents_to_rgb_is_a_small_image():
    image = latents_to_rgb(torch.zeros(4, 8, 6), SD1)
    assert image.size == (6, 8) and image.getpixel((0, 0)) == (128, 128, 128)
    assert latents_to_rgb(torch.randn(16, 4, 4), SD1).size == (4, 4)  # other layouts: normalised channels


def test_preview_capture_keeps_the_first_image_and_clears_after():
    unet = torch.nn.Identity()
    preview = LatentPreview()
    with preview.capture(unet, SD1):
        unet(torch.randn(2, 9, 4, 4))
        assert preview.step == 1 and preview.image().size == (4, 4)
    assert preview.image() is None
    assert not unet._forward_pre_hooks
