"""`<lora:name:w>` with every file layout: changes the image, composes, removes bit-exactly, no wasted work."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import make_data_dir, make_settings
from webui.core.requests import GenerationRequest
from webui.testing.lora_files import attention_targets, write_adapter

BASE = GenerationRequest(prompt="a red circle", steps=3, width=32, height=32, seed=8, sampler_name="Euler",
                         save_images=False)
FORMATS = ["lora", "locon", "loha", "lokr", "lokr_factorised", "full", "peft", "simpletuner"]


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("lora"), tiny_checkpoints, ("sd1", "sdxl"))
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    pipe = services.runtime.manager.require().pipeline
    for index, fmt in enumerate(FORMATS):
        folder = services.settings.paths.lycoris_dir if fmt.startswith(("lokr", "loha")) else \
            services.settings.paths.lora_dir
        write_adapter(folder / f"{fmt}.safetensors", pipe, fmt, seed=index)
    write_adapter(services.settings.paths.lora_dir / "second.safetensors", pipe, "lora", seed=42)
    yield services
    services.runtime.executor.shutdown()


def image(services, prompt: str, **fields) -> np.ndarray:
    return np.asarray(services.generation.txt2img(dataclasses.replace(BASE, prompt=prompt, **fields)).images[0].image)


def weights(pipe) -> dict[str, torch.Tensor]:
    state = {f"unet.{k}": v.clone() for k, v in pipe.unet.state_dict().items()}
    state.update({f"te.{k}": v.clone() for k, v in pipe.text_encoder.state_dict().items()})
    return state


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_layout_changes_the_image_and_weight_zero_does_not(services, fmt):
    plain = image(services, "a red circle")
    result = services.generation.txt2img(dataclasses.replace(BASE, prompt=f"a red circle <lora:{fmt}:1>"))
    assert not result.warnings, result.warnings
    assert not np.array_equal(plain, np.asarray(result.images[0].image))
    assert f'Lora hashes: "{fmt}: ' in result.infotexts[0]
    assert np.array_equal(plain, image(services, f"a red circle <lora:{fmt}:0>"))
    assert np.array_equal(plain, image(services, "a red circle"))


def test_lora_merge_matches_the_formula(services):
    pipe = services.runtime.manager.require().pipeline
    target = attention_targets(pipe)[0]
    module = dict(pipe.unet.named_modules())[target]
    base = module.weight.detach().clone()
    from safetensors.torch import load_file
    state = load_file(str(services.settings.paths.lora_dir / "lora.safetensors"))
    key = "lora_unet_" + target.replace(".", "_")
    down, up, alpha = state[f"{key}.lora_down.weight"], state[f"{key}.lora_up.weight"], state[f"{key}.alpha"]
    services.generation.txt2img(dataclasses.replace(BASE, prompt="x <lora:lora:0.7>"))
    expected = base + 0.7 * (up @ down) * (alpha / down.shape[0])
    assert torch.allclose(module.weight, expected, atol=1e-6)
    services.generation.txt2img(BASE)
    assert torch.equal(module.weight, base)


def test_remove_restores_every_tensor_bit_exactly(services):
    pipe = services.runtime.manager.require().pipeline
    before = weights(pipe)
    services.generation.txt2img(dataclasses.replace(BASE,
                                                    prompt="a <lora:lora:1> <lyco:loha:0.5> <lora:lokr:0.8:0.2> b"))
    changed = weights(pipe)
    assert any(not torch.equal(before[k], changed[k]) for k in before)
    services.generation.txt2img(BASE)
    after = weights(pipe)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_two_adapters_compose_and_unchanged_set_does_no_work(services):
    adapters = services.runtime.manager.require().adapters
    one = image(services, "x <lora:lora:1>")
    both = image(services, "x <lora:lora:1> <lora:second:1>")
    assert not np.array_equal(one, both)
    calls = adapters.merge_calls
    again = image(services, "x <lora:lora:1> <lora:second:1>")
    assert adapters.merge_calls == calls  # same set: no adapter work at all
    assert np.array_equal(both, again)
    image(services, "x <lora:lora:1> <lora:second:1> <lora:peft:1>")
    assert adapters.merge_calls == calls + 1  # an addition merges only the new file


def test_text_encoder_and_unet_weights_apply_separately(services):
    pipe = services.runtime.manager.require().pipeline
    services.generation.txt2img(BASE)  # no adapters: base weights
    te_before = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    services.generation.txt2img(dataclasses.replace(BASE, prompt="x <lora:lora:0:1>"))
    assert all(torch.equal(te_before[k], v) for k, v in pipe.text_encoder.state_dict().items())
    services.generation.txt2img(dataclasses.replace(BASE, prompt="x <lora:lora:1:0>"))
    assert any(not torch.equal(te_before[k], v) for k, v in pipe.text_encoder.state_dict().items())
    services.generation.txt2img(BASE)


def test_unknown_and_wrong_family_files_warn_never_crash(services):
    plain = image(services, "a red circle")
    missing = services.generation.txt2img(dataclasses.replace(BASE, prompt="a red circle <lora:nope:1>"))
    assert any("'nope' not found" in w for w in missing.warnings)
    services.models.select_checkpoint("tiny-sdxl.safetensors")
    try:
        xl_pipe = services.runtime.manager.require().pipeline
        write_adapter(services.settings.paths.lora_dir / "xl-ldm.safetensors", xl_pipe, "lora", ldm_names=True)
        xl = services.generation.txt2img(dataclasses.replace(BASE, prompt="x <lora:xl-ldm:1>", width=64, height=64))
        assert not xl.warnings, xl.warnings
        plain_xl = image(services, "x", width=64, height=64)
        assert not np.array_equal(plain_xl, np.asarray(xl.images[0].image))
    finally:
        services.models.select_checkpoint("tiny-sd1.safetensors")
    wrong = services.generation.txt2img(dataclasses.replace(BASE, prompt="a red circle <lora:xl-ldm:1>"))
    assert any("xl-ldm" in w and "skipped" in w for w in wrong.warnings)
    assert np.array_equal(plain, np.asarray(wrong.images[0].image))


def test_loras_listed_with_metadata(services):
    names = {row["name"]: row for row in services.networks.lora_list()}
    assert {"lora", "loha", "lokr", "second"} <= set(names)
    assert names["lora"]["metadata"]["ss_network_dim"] == "4"


def test_loras_apply_and_restore_under_lowvram_streaming(tmp_path):
    """`--lowvram` (accelerate's sequential offload) leaves the parameters on the meta device and streams the real
    ones from the offload hooks' store: a LoRA must be merged there, or it silently does nothing."""
    from accelerate import cpu_offload
    from accelerate.hooks import remove_hook_from_module
    from diffusers import StableDiffusionPipeline

    from webui.engine.networks.adapters import AdapterRequest, AdapterSet
    from webui.testing.tiny_models import build_tiny_components

    torch.set_num_threads(1)
    pipe = StableDiffusionPipeline(**build_tiny_components("sd1", 0), tokenizer=None, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    path = write_adapter(tmp_path / "style.safetensors", pipe, "locon", seed=4)
    inputs = (torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor(10),
              torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1)))
    request = AdapterRequest("style", path, "k")

    def unet_out() -> torch.Tensor:
        with torch.no_grad():
            return pipe.unet(*inputs).sample

    base = unet_out()
    adapters = AdapterSet(pipe)
    adapters.apply([request])
    with_lora = unet_out()
    adapters.restore()
    for module in (pipe.unet, pipe.text_encoder):
        cpu_offload(module, execution_device=torch.device("cpu"))
    try:
        assert any(param.is_meta for param in pipe.unet.parameters())
        streamed = AdapterSet(pipe)
        assert streamed.apply([request]) == []
        assert torch.allclose(unet_out(), with_lora, atol=1e-6) and not torch.allclose(with_lora, base)
        streamed.restore()
        assert torch.equal(unet_out(), base)
    finally:
        for module in (pipe.unet, pipe.text_encoder):
            remove_hook_from_module(module, recurse=True)
