"""The shipped demo checkpoint loads like any SD1 file (directly and through the registry) and draws what it is
asked; its build script keeps working.

Why here: the demo model is the first thing a newcomer sees, and it depends on loader conventions that cannot be
read from weights (8 UNet heads, 64-wide text heads, quick_gelu, x4 VAE, scaling 0.18215). If the loader or the
converter drifts, these tests fail before a user sees noise.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from benchmarks.demo_quality import DEMO_CHECKPOINT, generate, load_demo_pipeline, score_image
from tests.conftest import make_settings
from webui.core.requests import GenerationRequest
from webui.engine.models.loader import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
RED_CIRCLE_SEED = 1000


@pytest.fixture(scope="module")
def demo_pipeline(tmp_path_factory):
    assert DEMO_CHECKPOINT.is_file(), f"Demo checkpoint missing; run tools/build_demo_model.py ({DEMO_CHECKPOINT})"
    return load_demo_pipeline(DEMO_CHECKPOINT, tmp_path_factory.mktemp("demo-cache"))


def test_demo_checkpoint_is_a_small_fp16_sd1_file(demo_pipeline) -> None:
    from webui.engine.models.detection import detect_kind_from_keys
    from webui.engine.models.safetensors_header import header_shapes

    assert detect_kind_from_keys(header_shapes(DEMO_CHECKPOINT)).family == "sd1"
    assert DEMO_CHECKPOINT.stat().st_size < 30_000_000
    with safe_open(str(DEMO_CHECKPOINT), framework="pt") as handle:
        assert handle.get_slice("model.diffusion_model.out.2.weight").get_dtype() == "F16"
    assert demo_pipeline.tokenizer.vocab_size == 49408
    assert demo_pipeline.vae_scale_factor == 4
    assert demo_pipeline.vae.config.scaling_factor == pytest.approx(0.18215)
    assert demo_pipeline.scheduler.config.prediction_type == "epsilon"


def test_demo_model_draws_a_red_circle_on_blue(demo_pipeline) -> None:
    image = generate(demo_pipeline, "a red circle on a blue background", [RED_CIRCLE_SEED])[0]
    score = score_image(image)
    assert image.size == (64, 64)
    assert (score.fg, score.shape, score.bg) == ("red", "circle", "blue"), score


def test_demo_model_is_listed_loaded_and_draws_the_named_colours(tmp_path) -> None:
    from webui.services import DEMO_MODEL_PATH, build_services

    assert DEMO_MODEL_PATH.is_file()
    services = build_services(make_settings(tmp_path, include_demo_model=True))
    try:
        assert services.models.load_startup_model().result() == "demo-shapes.safetensors"
        assert services.models.is_demo_model(services.models.current_checkpoint())
        request = GenerationRequest(prompt="a red circle on a blue background", steps=20, width=64, height=64,
                                    cfg_scale=6.0, seed=RED_CIRCLE_SEED, sampler_name="DPM++ 2M", save_images=False)
        score = score_image(services.generation.txt2img(request).images[0].image)
        assert score.bg == "blue" and score.fg == "red"
        other = score_image(services.generation.txt2img(dataclasses.replace(
            request, prompt="a yellow square on a green background")).images[0].image)
        assert other.bg == "green" and other.fg == "yellow"
    finally:
        services.runtime.executor.shutdown()


def test_build_script_runs_end_to_end_quickly(tmp_path) -> None:
    out = tmp_path / "quick-demo.safetensors"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "build_demo_model.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Loader check: family sd1" in result.stdout
    assert time.perf_counter() - started < 120
    loaded = load_checkpoint(out, cache_dir=tmp_path / "cache", device="cpu", dtype=torch.float32)
    assert loaded.family == "sd1" and loaded.pipeline.vae_scale_factor == 4
    # stage 2 (how the shipped file was finished): continue training a built file
    continued = tmp_path / "continued.safetensors"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "build_demo_model.py"), "--quick", "--continue-from", str(out),
         "--out", str(continued)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with safe_open(str(continued), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["demo.build"] and metadata["demo.continued"]


def test_training_samples_draw_the_prompt_on_the_demo_model(tmp_path) -> None:
    """The Train tab's sample images use a sampler that works at kohya's 20 steps (the single file's default PNDM
    drew noise here), and leave the pipeline's own scheduler in place afterwards."""
    from webui.training.samples import SamplePrompt, generate_samples

    pipe = load_demo_pipeline(DEMO_CHECKPOINT, tmp_path / "cache")
    default = pipe.scheduler
    prompt = SamplePrompt("a red circle on a blue background", width=64, height=64, seed=RED_CIRCLE_SEED,
                          cfg_scale=6.0, steps=20)
    [path] = generate_samples(pipe, [prompt], tmp_path / "samples", "e000001", 64, torch.device("cpu"))
    score = score_image(Image.open(path).convert("RGB"))
    assert (score.fg, score.bg) == ("red", "blue"), score
    assert pipe.scheduler is default
