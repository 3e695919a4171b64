"""The SD VAE quicksetting: Automatic / None / a file in models/VAE, and a VAE that does not fit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.conftest import make_data_dir, make_settings
from webui.core.errors import ModelLoadError
from webui.core.requests import GenerationRequest
from webui.testing.tiny_models import write_tiny_vae

BASE = GenerationRequest(prompt="a cat", steps=2, width=32, height=32, seed=5, save_images=False)


@pytest.fixture
def services(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sd1",))
    write_tiny_vae(data_dir / "models" / "VAE" / "other.vae.safetensors", seed=3)
    write_tiny_vae(data_dir / "models" / "VAE" / "wrong-size.safetensors", block_out_channels=(32, 64, 64))
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    yield services
    services.runtime.executor.shutdown()


def image(services, **fields) -> np.ndarray:
    return np.asarray(services.generation.txt2img(dataclasses.replace(BASE, **fields)).images[0].image)


def test_vae_file_changes_the_image_and_none_restores_it(services):
    assert services.models.vae_titles() == ["Automatic", "None", "other.vae.safetensors", "wrong-size.safetensors"]
    own = image(services)
    services.models.select_vae("other.vae.safetensors")
    result = services.generation.txt2img(BASE)
    assert "VAE: other.vae.safetensors" in result.infotexts[0]
    assert "VAE hash: " in result.infotexts[0]
    assert not np.array_equal(own, np.asarray(result.images[0].image))
    services.models.select_vae("None")
    assert np.array_equal(own, image(services))
    assert services.options.get_options()["sd_vae"] == "None"


def test_vae_for_another_architecture_is_refused_and_current_vae_stays(services):
    services.models.select_vae("other.vae.safetensors")
    with_other = image(services)
    with pytest.raises(ModelLoadError, match="does not fit"):
        services.models.select_vae("wrong-size.safetensors")
    assert services.models.current_vae() == "other.vae.safetensors"
    assert np.array_equal(with_other, image(services))


def test_automatic_uses_a_same_named_vae_next_to_the_checkpoint(services):
    own = image(services)
    ckpt_dir = services.settings.paths.ckpt_dir
    write_tiny_vae(ckpt_dir / "tiny-sd1.vae.safetensors", seed=9)
    services.models.refresh_models()
    assert "tiny-sd1.vae.safetensors" not in services.models.checkpoint_titles()
    services.models.select_vae("None")
    services.models.select_vae("Automatic")
    result = services.generation.txt2img(BASE)
    assert "VAE: tiny-sd1.vae.safetensors" in result.infotexts[0]
    assert not np.array_equal(own, np.asarray(result.images[0].image))
