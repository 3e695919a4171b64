"""txt2img through the services facade with tiny real models: determinism, seeds, saving, bad input."""
from __future__ import annotations

import dataclasses
import shutil
import threading
from datetime import date

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_data_dir, make_settings
from webui.core.errors import ModelLoadError, ModelNotFoundError, SamplerError, ValidationError
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest
from webui.core.samplers import sampler_names
from webui.engine.output.png import read_infotext

BASE = GenerationRequest(prompt="a red circle", negative_prompt="blurry", steps=3, width=32, height=32,
                         cfg_scale=5.0, seed=1234, save_images=False)


def pixels(result) -> list[np.ndarray]:
    return [np.asarray(img.image) for img in result.images]


@pytest.mark.parametrize("sampler", sampler_names())
def test_same_seed_same_image_for_every_sampler(sd1_services, sampler):
    request = dataclasses.replace(BASE, sampler_name=sampler)
    first = sd1_services.generation.txt2img(request)
    second = sd1_services.generation.txt2img(request)
    assert np.array_equal(pixels(first)[0], pixels(second)[0])
    other = sd1_services.generation.txt2img(dataclasses.replace(request, seed=99))
    assert not np.array_equal(pixels(first)[0], pixels(other)[0])


def test_batch_seeds_are_seed_plus_i_and_match_single_images(sd1_services):
    batch = sd1_services.generation.txt2img(dataclasses.replace(BASE, batch_size=2, n_iter=2, seed=100))
    assert batch.seeds == [100, 101, 102, 103]
    single = sd1_services.generation.txt2img(dataclasses.replace(BASE, seed=103))
    # A1111-style CPU noise: image i depends only on its own seed, not on its place in the batch.
    assert np.abs(pixels(batch)[3].astype(int) - pixels(single)[0].astype(int)).max() <= 1


def test_random_seed_is_resolved_and_recorded(sd1_services):
    result = sd1_services.generation.txt2img(dataclasses.replace(BASE, seed=-1))
    assert result.request.seed >= 0
    assert f"Seed: {result.request.seed}" in result.infotexts[0]


def test_images_saved_with_infotext_that_parses_back(sd1_services):
    request = dataclasses.replace(BASE, save_images=True, seed=4242, sampler_name="DPM++ 2M",
                                  scheduler="Karras", clip_skip=2)
    result = sd1_services.generation.txt2img(request)
    path = result.images[0].path
    folder = sd1_services.settings.paths.outputs_dir / "txt2img-images" / date.today().isoformat()
    assert path.parent == folder
    assert path.name.endswith("-4242.png")
    text = read_infotext(Image.open(path))
    assert text == result.infotexts[0]
    fields = parse_infotext(text).to_generation_fields()
    assert fields["prompt"] == "a red circle"
    assert fields["negative_prompt"] == "blurry"
    assert (fields["steps"], fields["seed"], fields["width"], fields["height"]) == (3, 4242, 32, 32)
    assert (fields["sampler_name"], fields["scheduler"], fields["cfg_scale"]) == ("DPM++ 2M", "Karras", 5.0)
    assert fields["clip_skip"] == 2
    assert fields["model"] == "tiny-sd1"
    assert len(fields["model_hash"]) == 10


def test_clip_skip_changes_the_image(sd1_services):
    one = sd1_services.generation.txt2img(BASE)
    two = sd1_services.generation.txt2img(dataclasses.replace(BASE, clip_skip=2))
    assert not np.array_equal(pixels(one)[0], pixels(two)[0])


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"width": 500}, ValidationError, "divisible by 8"),
    ({"sampler_name": "Nonsense"}, SamplerError, "Unknown sampler"),
    ({"scheduler": "Karras", "sampler_name": "DDIM"}, SamplerError, "not available"),
    ({"checkpoint": "missing.safetensors"}, ModelNotFoundError, "No checkpoint named"),
])
def test_bad_requests_give_clear_errors_and_the_model_keeps_working(sd1_services, fields, error, message):
    with pytest.raises(error, match=message):
        sd1_services.generation.txt2img(dataclasses.replace(BASE, **fields))
    assert len(sd1_services.generation.txt2img(BASE).images) == 1


def test_interrupt_stops_the_job_and_keeps_finished_images(sd1_services):
    started = threading.Event()
    original = sd1_services.runtime.executor.progress.update

    def spy(**fields):
        original(**fields)
        if fields.get("sampling_step") == 1 and sd1_services.queue.progress().job_no == 1:
            started.set()
            sd1_services.queue.interrupt()

    sd1_services.runtime.executor.progress.update = spy
    try:
        result = sd1_services.generation.txt2img(dataclasses.replace(BASE, n_iter=4, steps=4))
    finally:
        sd1_services.runtime.executor.progress.update = original
    assert started.is_set()
    assert result.interrupted
    assert len(result.images) == 2  # batch 1 complete, batch 2 stopped after its first step, 3 and 4 never ran


def test_skip_ends_only_the_current_batch(sd1_services):
    original = sd1_services.runtime.executor.progress.update

    def spy(**fields):
        original(**fields)
        if fields.get("sampling_step") == 1 and sd1_services.queue.progress().job_no == 0:
            sd1_services.queue.skip()

    sd1_services.runtime.executor.progress.update = spy
    try:
        result = sd1_services.generation.txt2img(dataclasses.replace(BASE, n_iter=2, steps=4))
    finally:
        sd1_services.runtime.executor.progress.update = original
    assert not result.interrupted
    assert len(result.images) == 2
    full = sd1_services.generation.txt2img(dataclasses.replace(BASE, seed=BASE.seed + 1, steps=4))
    assert np.array_equal(pixels(result)[1], pixels(full)[0])  # the second batch ran in full


def test_corrupt_and_wrong_files_are_refused_and_previous_model_stays(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sd1",))
    ckpt_dir = data_dir / "models" / "Stable-diffusion"
    good = tiny_checkpoints["sd1"].read_bytes()
    (ckpt_dir / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (ckpt_dir / "garbage.safetensors").write_bytes(b"\x00\x01not a checkpoint at all" * 100)
    (ckpt_dir / "notes.ckpt").write_bytes(b"plain text, not a pickle")
    services = build_services(make_settings(data_dir))
    try:
        services.models.select_checkpoint("tiny-sd1.safetensors")
        before = pixels(services.generation.txt2img(BASE))[0]
        for name in ("truncated.safetensors", "garbage.safetensors", "notes.ckpt"):
            with pytest.raises(ModelLoadError) as info:
                services.models.select_checkpoint(name)
            assert name in str(info.value)
            assert services.models.current_checkpoint() == "tiny-sd1.safetensors"
        assert np.array_equal(pixels(services.generation.txt2img(BASE))[0], before)
    finally:
        services.runtime.executor.shutdown()


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_other_families_load_from_single_file_and_generate(tmp_path, tiny_checkpoints, family):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path, tiny_checkpoints, (family,))
    services = build_services(make_settings(data_dir))
    try:
        title = tiny_checkpoints[family].name
        assert services.models.checkpoint_titles() == [title]
        assert services.models.select_checkpoint(title) == title
        result = services.generation.txt2img(dataclasses.replace(BASE, width=64, height=48))
        assert result.images[0].image.size == (64, 48)
        again = services.generation.txt2img(dataclasses.replace(BASE, width=64, height=48))
        assert np.array_equal(pixels(result)[0], pixels(again)[0])
    finally:
        services.runtime.executor.shutdown()


def test_switching_checkpoints_loads_once_and_refresh_finds_new_files(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir))
    try:
        services.models.select_checkpoint("tiny-sd1.safetensors")
        a = pixels(services.generation.txt2img(BASE))[0]
        shutil.copy(tiny_checkpoints["sd1-other"], data_dir / "models" / "Stable-diffusion" / "other.safetensors")
        assert "other.safetensors" not in services.models.checkpoint_titles()
        services.models.refresh_models()
        assert "other.safetensors" in services.models.checkpoint_titles()
        loads = services.runtime.manager.load_count
        services.models.select_checkpoint("other.safetensors")
        services.models.select_checkpoint("other.safetensors")
        assert services.runtime.manager.load_count == loads + 1
        b = services.generation.txt2img(BASE)
        assert "Model: other" in b.infotexts[0]
        assert not np.array_equal(a, pixels(b)[0])
    finally:
        services.runtime.executor.shutdown()


def test_sdxl_prompt_syntax_and_composable_prompts(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sdxl",))
    services = build_services(make_settings(data_dir))
    try:
        services.models.select_checkpoint("tiny-sdxl.safetensors")
        base = dataclasses.replace(BASE, width=64, height=64, sampler_name="Euler")
        plain = pixels(services.generation.txt2img(base))[0]
        zero_part = pixels(services.generation.txt2img(dataclasses.replace(base, prompt="a red circle AND a cat:0")))[0]
        assert np.array_equal(plain, zero_part)
        edited = services.generation.txt2img(dataclasses.replace(base,
                                                                 prompt="a [red:(blue:1.3):0.5] circle BREAK sky"))
        assert not np.array_equal(plain, pixels(edited)[0])
    finally:
        services.runtime.executor.shutdown()
