"""Checkpoint switching with the RAM cache (A1111's sd_checkpoints_limit) and a byte budget."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.conftest import make_data_dir, make_settings
from webui.core.requests import GenerationRequest

BASE = GenerationRequest(prompt="a cat", steps=2, width=32, height=32, seed=1, sampler_name="Euler",
                         save_images=False)


@pytest.fixture
def services(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sd1", "sd1-other", "sd2"))
    services = build_services(make_settings(data_dir))
    yield services
    services.runtime.executor.shutdown()


def pixels(services) -> np.ndarray:
    return np.asarray(services.generation.txt2img(BASE).images[0].image)


def test_without_cache_every_switch_loads(services):
    for title in ("tiny-sd1.safetensors", "tiny-sd1-other.safetensors", "tiny-sd1.safetensors"):
        services.models.select_checkpoint(title)
    assert services.runtime.manager.load_count == 3


def test_cached_switch_back_does_not_load_and_gives_the_same_images(services):
    services.options.update({"sd_checkpoints_limit": 3})
    services.models.select_checkpoint("tiny-sd1.safetensors")
    first = pixels(services)
    services.generation.txt2img(dataclasses.replace(BASE, prompt="x"))
    services.models.select_checkpoint("tiny-sd1-other.safetensors")
    services.models.select_checkpoint("tiny-sd2.safetensors")
    assert services.runtime.manager.load_count == 3
    services.models.select_checkpoint("tiny-sd1.safetensors")
    assert services.runtime.manager.load_count == 3 and services.runtime.manager.cache.hits == 1
    assert np.array_equal(first, pixels(services))
    # limit 3 = the loaded one + 2 cached
    assert sorted(services.runtime.manager.cache.titles()) == ["tiny-sd1-other.safetensors", "tiny-sd2.safetensors"]


def test_byte_budget_evicts(services):
    services.options.update({"sd_checkpoints_limit": 5, "sd_checkpoints_cache_bytes": 1})
    services.models.select_checkpoint("tiny-sd1.safetensors")
    services.models.select_checkpoint("tiny-sd1-other.safetensors")
    assert services.runtime.manager.cache.titles() == []
    services.models.select_checkpoint("tiny-sd1.safetensors")
    assert services.runtime.manager.load_count == 3
