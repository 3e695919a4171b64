"""T2I-Adapter units (files in `models/ControlNet`, in TencentARC's original keys, diffusers keys or a diffusers
folder) in generation: the layouts load to the same model; weight 0 is no control bit for bit; the adapter
changes the image and composes with a ControlNet unit; guidance end and the control modes count; img2img and the
hires pass run; a single-channel (sketch/canny) adapter takes a grey map; the infotext records the unit; the
model list and the family check treat adapters like ControlNets."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.engine.control_support import control_services, pixels, square
from webui.core.control import ControlUnit
from webui.core.errors import ModelLoadError, ValidationError
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.testing.tiny_controlnet import write_tiny_adapter, write_tiny_controlnet

BASE = GenerationRequest(prompt="a square", steps=4, width=32, height=32, seed=5, sampler_name="Euler",
                         save_images=False, denoising_strength=0.6)


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    def write(folder: Path) -> None:
        for layout in ("original", "diffusers", "folder"):
            suffix = "" if layout == "folder" else ".safetensors"
            write_tiny_adapter(folder / f"t2iadapter-{layout}{suffix}", layout=layout, seed=3)
        write_tiny_adapter(folder / "t2iadapter-sketch.safetensors", layout="original", seed=4, in_channels=1)
        write_tiny_controlnet(folder / "cn-sd1.safetensors", "sd1", seed=1)

    services = control_services(tmp_path_factory.mktemp("t2i"), tiny_checkpoints, ("sd1", "sdxl"), write)
    yield services
    services.runtime.executor.shutdown()


def run(services, **fields):
    return services.generation.txt2img(dataclasses.replace(BASE, **fields))


def unit(model: str = "t2iadapter-original", **fields) -> ControlUnit:
    return ControlUnit(model=model, image=fields.pop("image", square()), **fields)


@pytest.fixture(scope="module")
def plain(services):
    return pixels(run(services))


def test_the_three_layouts_are_the_same_adapter_and_change_the_image(services, plain):
    results = {layout: pixels(run(services, control_units=(unit(f"t2iadapter-{layout}"),)))
               for layout in ("original", "diffusers", "folder")}
    assert np.abs(results["original"] - plain).mean() > 1.0
    assert np.array_equal(results["original"], results["diffusers"])
    assert np.array_equal(results["original"], results["folder"])


def test_weight_zero_is_bit_for_bit_no_control(services, plain):
    assert np.array_equal(pixels(run(services, control_units=(unit(weight=0.0),))), plain)


def test_an_adapter_composes_with_a_controlnet(services):
    adapter, controlnet = unit(), unit("cn-sd1")
    both = pixels(run(services, control_units=(adapter, controlnet)))
    for alone in (adapter, controlnet):
        assert np.abs(both - pixels(run(services, control_units=(alone,)))).mean() > 0.3


def test_guidance_end_and_the_control_modes_count(services):
    full = pixels(run(services, control_units=(unit(),)))
    assert np.abs(pixels(run(services, control_units=(unit(guidance_end=0.25),))) - full).mean() > 0.3
    assert np.abs(pixels(run(services, control_units=(unit(guidance_start=0.5),))) - full).mean() > 0.3
    for mode in ("My prompt is more important", "ControlNet is more important"):
        assert np.abs(pixels(run(services, control_units=(unit(control_mode=mode),))) - full).mean() > 0.3


def test_img2img_hires_and_a_single_channel_adapter(services):
    img2img = Img2ImgInputs((square(48),))
    without = pixels(run(services, img2img=img2img))
    assert np.abs(pixels(run(services, img2img=img2img, control_units=(ControlUnit(model="t2iadapter-original"),)))
                  - without).mean() > 0.3  # the img2img input is the control image
    hires = run(services, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                control_units=(unit(),))
    assert hires.images[0].image.size == (48, 48)
    sketch = run(services, control_units=(unit("t2iadapter-sketch", module="canny"),))
    assert 'ControlNet 0: "Module: canny, Model: t2iadapter-sketch [' in sketch.infotexts[0]
    assert len(sketch.control_maps) == 1


def test_an_odd_size_runs(services):
    """40 px: the latents (20) halve to 10, the adapter's levels are fitted to the UNet's."""
    assert run(services, width=40, height=40, control_units=(unit(),)).images[0].image.size == (40, 40)


def test_lists_and_family_checks(services):
    names = [title.rsplit(" [", 1)[0] for title in services.control.models_for_checkpoint()[1:]]
    assert names == ["cn-sd1", "t2iadapter-diffusers", "t2iadapter-folder", "t2iadapter-original",
                     "t2iadapter-sketch"]
    services.models.select_checkpoint("tiny-sdxl.safetensors")
    try:
        with pytest.raises(ValidationError, match=r"'t2iadapter-original \[[0-9a-f]{8}\]' is for SD 1.x models"):
            run(services, control_units=(unit(),))
    finally:
        services.models.select_checkpoint("tiny-sd1.safetensors")


def test_adapters_that_do_not_fit_get_a_clear_message(tmp_path):
    from safetensors.torch import load_file, save_file

    from webui.engine.control.loading import read_facts, read_state
    from webui.engine.control.t2i_adapter import build_adapter
    from webui.testing.tiny_models import build_tiny_components

    config = dict(build_tiny_components("sd1", 0)["unet"].config)
    path = tmp_path / "a.safetensors"
    write_tiny_adapter(path, layout="original")
    state = load_file(str(path))
    with pytest.raises(ModelLoadError, match="do not fit the loaded checkpoint's latent scale"):
        build_adapter(state, read_facts(path).layout, config, 8, "a", torch.float32)
    with pytest.raises(ModelLoadError, match="do not split into the loaded checkpoint's 3 levels"):
        build_adapter(state, read_facts(path).layout, {**config, "block_out_channels": (32, 64, 64)}, 2, "a",
                      torch.float32)
    state["body.0.style_proj.weight"] = torch.zeros(2, 2)
    save_file(state, str(tmp_path / "style.safetensors"))
    with pytest.raises(ModelLoadError, match="not a full T2I-Adapter"):
        build_adapter(read_state(tmp_path / "style.safetensors"), "t2i-adapter", config, 2, "s", torch.float32)
