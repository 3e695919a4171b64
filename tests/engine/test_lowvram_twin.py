"""The `--lowvram` path on the CPU: accelerate's sequential offload (parameters on the meta device, the real ones
streamed from the offload hooks) runs here with the CPU as the execution device, so what a GPU user gets with
`--lowvram` is tested: txt2img with a LoRA and a textual-inversion embedding, img2img (the VAE encodes the input)
and the full-VAE live preview give the same images as without offload."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from accelerate import cpu_offload
from PIL import Image
from safetensors.torch import save_file

from tests.conftest import make_data_dir, make_settings
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.testing.lora_files import write_adapter

BASE = GenerationRequest(prompt="a noisy circle <lora:style:0.8>", steps=3, width=32, height=32, seed=11,
                         sampler_name="Euler", save_images=False, denoising_strength=0.6)


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    torch.set_num_threads(1)
    data_dir = make_data_dir(tmp_path_factory.mktemp("lowvram"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    pipe = services.runtime.manager.require().pipeline
    write_adapter(services.settings.paths.lora_dir / "style.safetensors", pipe, "locon", seed=2)
    services.settings.paths.embeddings_dir.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(2, 32, generator=torch.Generator().manual_seed(0))},
              str(services.settings.paths.embeddings_dir / "noisy.safetensors"))
    yield services
    services.runtime.executor.shutdown()


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0].image).astype(np.int16)


def test_sequential_offload_gives_the_same_images(services):
    txt = services.generation.txt2img(BASE)
    assert not txt.warnings, txt.warnings
    source = Image.new("RGB", (32, 32), "orange")
    img = services.generation.txt2img(dataclasses.replace(BASE, img2img=Img2ImgInputs((source,))))
    pipe = services.runtime.manager.require().pipeline
    for name in ("unet", "text_encoder", "vae"):  # what --lowvram's enable_sequential_cpu_offload does on a GPU
        cpu_offload(getattr(pipe, name), execution_device=torch.device("cpu"))  # (diffusers itself says "cpu:0",
        # which accelerate turns into plain tensors on a CPU: this is the same call with the CPU's own name)
    assert all(param.is_meta for param in pipe.unet.parameters())
    streamed_txt = services.generation.txt2img(BASE)
    assert not streamed_txt.warnings, streamed_txt.warnings
    assert np.array_equal(pixels(streamed_txt), pixels(txt))
    streamed_img = services.generation.txt2img(dataclasses.replace(BASE, img2img=Img2ImgInputs((source,))))
    assert np.array_equal(pixels(streamed_img), pixels(img))
    plain = services.generation.txt2img(dataclasses.replace(BASE, prompt="a circle"))  # LoRA removed from the store
    assert not np.array_equal(pixels(plain), pixels(txt))
    from webui.engine.generation.preview_decoders import vae_decode

    latents = torch.randn(4, 16, 16)
    assert vae_decode(pipe.vae, latents).size == (32, 32)
