"""The reference preprocessors (no model file): the reference image changes the output, weight 0 is no control
bit for bit, the three modules differ, style fidelity and the guidance window count, they combine with a
ControlNet unit and run in img2img and the hires pass, the loaded UNet is left unchanged, and the API takes a
reference unit with model "None"."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from tests.engine.control_support import control_services, pixels
from tests.engine.control_support import stripes as striped
from webui.core.control import ControlUnit, validate_units
from webui.core.control_modules import module_detail
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.testing.tiny_controlnet import write_tiny_controlnet

BASE = GenerationRequest(prompt="a square", steps=4, width=32, height=32, seed=5, sampler_name="Euler",
                         save_images=False, denoising_strength=0.6)


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    services = control_services(tmp_path_factory.mktemp("reference"), tiny_checkpoints, ("sd1",),
                                lambda folder: write_tiny_controlnet(folder / "cn-sd1.safetensors", "sd1", seed=1))
    yield services
    services.runtime.executor.shutdown()


def stripes() -> Image.Image:
    return striped(background="navy", line="yellow")


def run(services, **fields):
    return services.generation.txt2img(dataclasses.replace(BASE, **fields))


def ref(module: str = "reference_adain+attn", **fields) -> ControlUnit:
    return ControlUnit(module=module, image=fields.pop("image", stripes()), **fields)


@pytest.fixture(scope="module")
def plain(services):
    return pixels(run(services))


def test_the_modules_are_model_free_and_a_unit_needs_no_model():
    assert module_detail()["reference_only"]["model_free"] is True
    assert module_detail()["canny"]["model_free"] is False
    assert validate_units([ref()]) == []
    assert validate_units([ControlUnit(module="canny", image=stripes())]) != []


def test_each_module_changes_the_image_and_weight_zero_does_not(services, plain):
    unet = services.runtime.manager.require().pipeline.unet
    before = {name: p.processor for name, p in unet.named_modules() if hasattr(p, "processor")}
    outputs = {}
    # Self-attention carries little in a random tiny UNet, so reference_only moves the image less than AdaIN.
    for module, least in (("reference_only", 0.03), ("reference_adain", 0.5), ("reference_adain+attn", 0.5)):
        result = run(services, control_units=(ref(module),))
        outputs[module] = pixels(result)
        assert np.abs(outputs[module] - plain).mean() > least, module
        assert f'Module: {module}, Model: None' in result.infotexts[0]
    assert np.abs(outputs["reference_adain+attn"] - outputs["reference_adain"]).mean() > 0.03
    assert np.array_equal(pixels(run(services, control_units=(ref(weight=0.0),))), plain)
    after = {name: p.processor for name, p in unet.named_modules() if hasattr(p, "processor")}
    assert after == before and not any(m._forward_hooks for m in unet.modules())  # the UNet is left as it was
    assert np.array_equal(pixels(run(services)), plain)


def test_fidelity_modes_and_guidance_count(services):
    balanced = pixels(run(services, control_units=(ref(threshold_a=0.5),)))
    assert np.abs(pixels(run(services, control_units=(ref(threshold_a=1.0),))) - balanced).mean() > 0.2
    assert np.abs(pixels(run(services, control_units=(ref(control_mode="My prompt is more important"),)))
                  - balanced).mean() > 0.2
    assert np.abs(pixels(run(services, control_units=(ref(guidance_start=0.5),))) - balanced).mean() > 0.2


def test_with_a_controlnet_in_img2img_and_hires(services):
    both = pixels(run(services, control_units=(ref(), ControlUnit(model="cn-sd1", image=stripes()))))
    assert np.abs(both - pixels(run(services, control_units=(ref(),)))).mean() > 0.3
    img2img = run(services, img2img=Img2ImgInputs((Image.new("RGB", (32, 32), "red"),)),
                  control_units=(ControlUnit(module="reference_only"),))  # the img2img input is the reference
    assert img2img.images[0].image.size == (32, 32)
    hires = run(services, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                control_units=(ref(),))
    assert hires.images[0].image.size == (48, 48)
