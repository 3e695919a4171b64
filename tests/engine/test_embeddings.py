"""Textual-inversion embeddings: A1111 .pt / .safetensors / SDXL clip_l+clip_g files used by name."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import make_data_dir, make_settings
from webui.core.requests import GenerationRequest

BASE = GenerationRequest(prompt="a red circle", steps=3, width=32, height=32, seed=3, sampler_name="Euler",
                         save_images=False)


def token_row(encoder, tokenizer, word: str) -> torch.Tensor:
    token = tokenizer(word, add_special_tokens=False).input_ids
    assert len(token) == 1
    return encoder.get_input_embeddings().weight[token[0]].detach().clone().float()


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("emb"), tiny_checkpoints, ("sd1", "sdxl"))
    (data_dir / "embeddings").mkdir(parents=True, exist_ok=True)
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    yield services
    services.runtime.executor.shutdown()


def image(services, **fields) -> np.ndarray:
    return np.asarray(services.generation.txt2img(dataclasses.replace(BASE, **fields)).images[0].image)


def test_a1111_pt_embedding_stands_for_its_vectors(services):
    pipe = services.runtime.manager.require().pipeline
    red = token_row(pipe.text_encoder, pipe.tokenizer, "red")
    folder = services.settings.paths.embeddings_dir
    torch.save({"string_to_param": {"*": red.unsqueeze(0)}, "name": "myred"}, folder / "myred.pt")
    noisy = torch.randn(2, red.shape[0], generator=torch.Generator().manual_seed(0))
    save_file({"emb_params": noisy}, str(folder / "noisy.safetensors"))
    plain = image(services)
    result = services.generation.txt2img(dataclasses.replace(BASE, prompt="a myred circle"))
    # The embedding holds the token vector of "red", so it draws exactly what "red" draws.
    assert np.array_equal(plain, np.asarray(result.images[0].image))
    assert "TI hashes: \"myred: " in result.infotexts[0]
    changed = image(services, prompt="a noisy circle")
    assert not np.array_equal(plain, changed)
    assert np.array_equal(plain, image(services))  # prompts without embeddings are unaffected afterwards
    listed = services.networks.embedding_list()
    assert {"myred", "noisy"} <= set(listed["loaded"])
    assert listed["loaded"]["noisy"]["vectors"] == 2


def test_sdxl_embedding_and_wrong_family_note(services):
    folder = services.settings.paths.embeddings_dir
    save_file({"clip_l": torch.randn(1, 32), "clip_g": torch.randn(1, 48)}, str(folder / "xlthing.safetensors"))
    result = services.generation.txt2img(dataclasses.replace(BASE, prompt="a xlthing circle"))
    assert any("xlthing" in note and "another model family" in note for note in result.warnings)
    assert "xlthing" in services.networks.embedding_list()["skipped"]
    services.models.select_checkpoint("tiny-sdxl.safetensors")
    try:
        plain = image(services, width=64, height=64)
        with_emb = services.generation.txt2img(dataclasses.replace(BASE, prompt="a xlthing circle", width=64,
                                                                   height=64))
        assert not with_emb.warnings
        assert not np.array_equal(plain, np.asarray(with_emb.images[0].image))
        assert "xlthing" in services.networks.embedding_list()["loaded"]
    finally:
        services.models.select_checkpoint("tiny-sd1.safetensors")


def test_broken_embedding_file_is_reported_not_fatal(services):
    folder = services.settings.paths.embeddings_dir
    (folder / "broken.pt").write_bytes(b"not a pickle")
    assert len(services.generation.txt2img(dataclasses.replace(BASE, prompt="a broken circle")).images) == 1
    assert "broken" in services.runtime.embeddings.errors()
