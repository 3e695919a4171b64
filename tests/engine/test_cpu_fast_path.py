"""The CPU fast path (a bfloat16 UNet inside a float32 pipeline) and `--compile`, on the tiny SD1 model.

The quality guard: the same seed in bfloat16 and float32 gives images whose mean absolute pixel difference stays
under `MAX_MEAN_DIFF` (0-255 scale). Measured on the tiny SD1 model (64 px, 20 steps, Euler, 5 seeds): mean 0.3
levels, largest pixel 3 (benchmarks/README.md). LoRAs apply and remove bit-exactly on bfloat16 weights as on
float32 ones.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from tests.conftest import make_data_dir, make_settings
from webui.core.requests import GenerationRequest
from webui.core.settings import MemoryFlags
from webui.engine.runtime.devices import DeviceConfig
from webui.testing.lora_files import write_adapter

BASE = GenerationRequest(prompt="a red circle", steps=4, width=32, height=32, seed=11, sampler_name="Euler",
                         save_images=True)
MAX_MEAN_DIFF = 6.0
MAX_PIXEL_DIFF = 64


def _services(root, tiny_checkpoints, **settings):
    from webui.services import build_services

    data_dir = make_data_dir(root, tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, **settings))
    services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
    return services


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, tiny_checkpoints):
    services = _services(tmp_path_factory.mktemp("fp32"), tiny_checkpoints)
    yield services
    services.runtime.executor.shutdown()


@pytest.fixture(scope="module")
def bf16(tmp_path_factory, tiny_checkpoints):
    services = _services(tmp_path_factory.mktemp("bf16"), tiny_checkpoints, cpu_precision="bfloat16")
    pipe = services.runtime.manager.require().pipeline
    write_adapter(services.settings.paths.lora_dir / "style.safetensors", pipe, "lora", seed=3)
    yield services
    services.runtime.executor.shutdown()


def _pixels(services, request: GenerationRequest = BASE) -> np.ndarray:
    result = services.generation.txt2img(request)
    return np.asarray(result.images[0].image).astype(np.int16)


def test_auto_picks_bfloat16_only_with_native_support():
    with_bf16 = DeviceConfig.from_settings("cpu", False, "auto", flags=frozenset({"avx2", "avx512_bf16"}))
    without = DeviceConfig.from_settings("cpu", False, "auto", flags=frozenset({"avx2", "avx512f"}))
    forced_off = DeviceConfig.from_settings("cpu", False, "float32", flags=frozenset({"amx_bf16"}))
    assert with_bf16.denoiser_dtype == torch.bfloat16 and "avx512_bf16" in with_bf16.precision_note
    assert with_bf16.dtype == torch.float32  # text encoder, latents and VAE stay float32
    assert without.denoiser_dtype is None and "no native bfloat16" in without.precision_note
    assert forced_off.denoiser_dtype is None
    assert DeviceConfig.from_settings("cuda", True, "auto").dtype == torch.float16


def test_bfloat16_unet_inside_a_float32_pipeline(bf16):
    pipe = bf16.runtime.manager.require().pipeline
    assert next(pipe.unet.parameters()).dtype == torch.bfloat16
    assert next(pipe.text_encoder.parameters()).dtype == torch.float32
    assert next(pipe.vae.parameters()).dtype == torch.float32


def test_same_seed_in_bfloat16_stays_close_to_float32(fp32, bf16):
    exact, fast = _pixels(fp32), _pixels(bf16)
    diff = np.abs(exact - fast)
    assert diff.mean() <= MAX_MEAN_DIFF, diff.mean()
    assert diff.max() <= MAX_PIXEL_DIFF, diff.max()
    assert np.array_equal(fast, _pixels(bf16))  # and it is repeatable


def test_lora_on_bfloat16_weights_changes_the_image_and_removal_restores_it(bf16):
    pipe = bf16.runtime.manager.require().pipeline
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    plain = _pixels(bf16)
    styled = _pixels(bf16, dataclasses.replace(BASE, prompt="a red circle <lora:style:1>"))
    assert not np.array_equal(plain, styled)
    assert np.array_equal(plain, _pixels(bf16))
    assert all(torch.equal(before[k], v) for k, v in pipe.unet.state_dict().items())


def test_img2img_and_hires_run_on_the_fast_path(bf16):
    hires = dataclasses.replace(BASE, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", hr_second_pass_steps=2,
                                denoising_strength=0.6)
    result = bf16.generation.txt2img(hires)
    assert result.images[0].image.size == (48, 48)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_keeps_the_image_and_takes_loras_without_recompiling(tmp_path, tiny_checkpoints, caplog, backend):
    """`--compile`: same image as eager within float tolerance, a LoRA applied afterwards changes the image without
    a new graph (nor do the live-preview hooks added per job), and the first call logs the measured cost and
    benefit. `aot_eager` checks the capture in seconds; `inductor` (the default backend, C++ kernels on the CPU)
    takes minutes on a 2-core machine."""
    from torch._dynamo.utils import counters

    services = _services(tmp_path, tiny_checkpoints, memory=MemoryFlags(compile=True, compile_backend=backend))
    try:
        pipe = services.runtime.manager.require().pipeline
        write_adapter(services.settings.paths.lora_dir / "style.safetensors", pipe, "lora", seed=3)
        with caplog.at_level(logging.WARNING):
            compiled = _pixels(services)
        assert any("--compile" in r.message and "compiled" in r.message for r in caplog.records)
        graphs = counters["stats"]["unique_graphs"]
        styled = _pixels(services, dataclasses.replace(BASE, prompt="a red circle <lora:style:1>"))
        again = _pixels(services)
        assert counters["stats"]["unique_graphs"] == graphs  # LoRA in/out: no recompilation
        assert not np.array_equal(compiled, styled)
        assert np.abs(again - compiled).max() <= 1
    finally:
        services.runtime.executor.shutdown()
    eager = _services(tmp_path / "eager", tiny_checkpoints)
    try:
        assert np.abs(_pixels(eager) - compiled).max() <= 2
    finally:
        eager.runtime.executor.shutdown()


def test_task_views_never_change_the_shared_modules_dtype(bf16):
    """diffusers' `from_pipe` casts every shared module to float32; our views must not (a float16 GPU model or
    the bfloat16 UNet would silently become float32 after the first img2img or hires pass)."""
    from webui.engine.generation.pipelines import pipeline_for

    pipe = bf16.runtime.manager.require().pipeline
    for task in ("img2img", "inpaint"):
        view = pipeline_for(pipe, task, is_inpaint_model=False)
        assert view.unet is pipe.unet and view.vae is pipe.vae
        assert next(pipe.unet.parameters()).dtype == torch.bfloat16
        assert next(pipe.vae.parameters()).dtype == torch.float32


@pytest.mark.slow
def test_flow_transformers_run_on_the_fast_path(flow_data):
    """AuraFlow and Flux: the transformer in bfloat16 inside a float32 pipeline, close to float32 for a seed."""
    from tests.conftest import AURA, FLUX_DEV
    from webui.services import build_services

    exact = build_services(make_settings(flow_data))
    fast = build_services(make_settings(flow_data, cpu_precision="bfloat16"))
    try:
        for checkpoint in (AURA, FLUX_DEV):
            request = dataclasses.replace(BASE, checkpoint=checkpoint, sampler_name="Euler", cfg_scale=2.0,
                                          save_images=False)
            diff = np.abs(_pixels(exact, request) - _pixels(fast, request))
            transformer = fast.runtime.manager.require().pipeline.transformer
            assert next(transformer.parameters()).dtype == torch.bfloat16
            assert diff.mean() <= MAX_MEAN_DIFF, (checkpoint, diff.mean())
    finally:
        exact.runtime.executor.shutdown()
        fast.runtime.executor.shutdown()
