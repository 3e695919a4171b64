"""img2img, inpainting, hires fix and upscalers with tiny real models."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tests.conftest import make_data_dir, make_settings
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.engine.generation.img2img_inputs import resize_image
from webui.engine.upscale.upscalers import run_tiled

BASE = GenerationRequest(prompt="a red circle", steps=4, width=32, height=32, seed=21, sampler_name="Euler",
                         save_images=False, denoising_strength=0.6)


def picture(width: int = 48, height: int = 40) -> Image.Image:
    image = Image.new("RGB", (width, height), (20, 40, 200))
    ImageDraw.Draw(image).ellipse((8, 8, width - 8, height - 8), fill=(220, 30, 30))
    return image


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("i2i"), tiny_checkpoints, ("sd1", "sdxl"))
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    yield services
    services.runtime.executor.shutdown()


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_each_resize_mode_gives_the_requested_size(services, mode):
    assert resize_image(picture(), 32, 24, mode).size == (32, 24)
    request = dataclasses.replace(BASE, width=40, height=32, img2img=Img2ImgInputs((picture(),), resize_mode=mode))
    result = services.generation.txt2img(request)
    assert result.images[0].image.size == (40, 32)
    assert "Denoising strength: 0.6" in result.infotexts[0]


def test_img2img_is_deterministic_and_saved_to_img2img_folder(services):
    request = dataclasses.replace(BASE, img2img=Img2ImgInputs((picture(),)), save_images=True)
    first = services.generation.txt2img(request)
    second = services.generation.txt2img(request)
    assert np.array_equal(np.asarray(first.images[0].image), np.asarray(second.images[0].image))
    assert first.images[0].path.parent.parent.name == "img2img-images"
    low = services.generation.txt2img(dataclasses.replace(request, denoising_strength=0.2, save_images=False))
    high = services.generation.txt2img(dataclasses.replace(request, denoising_strength=0.9, save_images=False))
    source = np.asarray(resize_image(picture(), 32, 32, 0)).astype(int)
    assert np.abs(np.asarray(low.images[0].image).astype(int) - source).mean() < \
        np.abs(np.asarray(high.images[0].image).astype(int) - source).mean()


@pytest.mark.parametrize("fill", [0, 1, 2, 3])
def test_inpaint_leaves_unmasked_pixels_unchanged(services, fill):
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((8, 8, 23, 23), fill=255)
    source = resize_image(picture(), 32, 32, 0)
    request = dataclasses.replace(BASE, img2img=Img2ImgInputs((source,), mask=mask, mask_blur=0,
                                                              inpainting_fill=fill), denoising_strength=0.9)
    result = services.generation.txt2img(request)
    out = np.asarray(result.images[0].image).astype(int)
    src = np.asarray(source).astype(int)
    outside = np.asarray(mask) == 0
    assert np.array_equal(out[outside], src[outside])
    assert not np.array_equal(out[~outside], src[~outside])
    fields = parse_infotext(result.infotexts[0]).params
    assert fields["Mask blur"] == "0"


def test_inpaint_not_masked_and_only_masked(services):
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((10, 10, 21, 21), fill=255)
    source = resize_image(picture(), 32, 32, 0)
    inverted = services.generation.txt2img(dataclasses.replace(BASE, img2img=Img2ImgInputs(
        (source,), mask=mask, mask_blur=0, inpainting_mask_invert=True)))
    out, src = np.asarray(inverted.images[0].image), np.asarray(source)
    inside = np.asarray(mask) > 0
    assert np.array_equal(out[inside], src[inside])
    assert "Mask mode: Inpaint not masked" in inverted.infotexts[0]
    only = services.generation.txt2img(dataclasses.replace(BASE, img2img=Img2ImgInputs(
        (source,), mask=mask, mask_blur=0, inpaint_full_res=True, inpaint_full_res_padding=4)))
    out = np.asarray(only.images[0].image)
    assert only.images[0].image.size == (32, 32)
    assert np.array_equal(out[~inside], src[~inside])
    assert "Inpaint area: Only masked" in only.infotexts[0]


def test_inpainting_checkpoint_is_detected_and_used(tmp_path):
    from webui.services import build_services
    from webui.testing.tiny_models import write_tiny_checkpoint

    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    write_tiny_checkpoint(ckpt_dir / "tiny-inpaint.safetensors", "sd1", in_channels=9)
    services = build_services(make_settings(tmp_path))
    try:
        services.models.select_checkpoint("tiny-inpaint.safetensors")
        assert services.runtime.manager.require().loaded.is_inpaint
        mask = Image.new("L", (32, 32), 0)
        ImageDraw.Draw(mask).rectangle((8, 8, 23, 23), fill=255)
        source = resize_image(picture(), 32, 32, 0)
        result = services.generation.txt2img(dataclasses.replace(BASE, img2img=Img2ImgInputs((source,), mask=mask,
                                                                                  mask_blur=0)))
        outside = np.asarray(mask) == 0
        assert np.array_equal(np.asarray(result.images[0].image)[outside], np.asarray(source)[outside])
        assert services.generation.txt2img(BASE).images[0].image.size == (32, 32)  # txt2img on an inpainting model
    finally:
        services.runtime.executor.shutdown()


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (nearest)", "Latent (bicubic antialiased)", "Lanczos"])
def test_hires_fix_gives_the_requested_size_and_infotext(services, upscaler):
    request = dataclasses.replace(BASE, enable_hr=True, hr_scale=1.5, hr_upscaler=upscaler, hr_second_pass_steps=2)
    result = services.generation.txt2img(request)
    assert result.images[0].image.size == (48, 48)
    fields = parse_infotext(result.infotexts[0]).to_generation_fields()
    assert fields["hr_scale"] == 1.5 and fields["hr_upscaler"] == upscaler
    assert fields["hr_second_pass_steps"] == 2 and fields["denoising_strength"] == 0.6
    assert fields["width"] == 32  # Size is the first pass, as in A1111
    resized = services.generation.txt2img(dataclasses.replace(request, hr_resize_x=64, hr_resize_y=40))
    assert resized.images[0].image.size == (64, 40)
    assert "Hires resize: 64x40" in resized.infotexts[0]


def test_sdxl_img2img_and_hires(services):
    services.models.select_checkpoint("tiny-sdxl.safetensors")
    try:
        i2i = services.generation.txt2img(dataclasses.replace(BASE, width=64, height=64,
                                                   img2img=Img2ImgInputs((picture(64, 64),))))
        assert i2i.images[0].image.size == (64, 64)
        hires = services.generation.txt2img(dataclasses.replace(BASE, width=64, height=64, enable_hr=True,
                                                                hr_scale=1.5))
        assert hires.images[0].image.size == (96, 96)
    finally:
        services.models.select_checkpoint("tiny-sd1.safetensors")


def test_img2img_shares_weights_with_the_loaded_pipeline(services):
    from webui.engine.generation.pipelines import pipeline_for

    pipe = services.runtime.manager.require().pipeline
    for task in ("img2img", "inpaint"):
        view = pipeline_for(pipe, task, False)
        assert view.unet is pipe.unet and view.vae is pipe.vae and view.text_encoder is pipe.text_encoder


def test_tiled_model_run_matches_untiled():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    image = torch.rand(1, 3, 70, 90)
    with torch.inference_mode():
        whole = model(image)
        tiled = run_tiled(model, image, 2, tile=32, overlap=8)
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_realesrgan_file_loads_via_the_registry_and_upscales_x4(services):
    from webui.engine.upscale.postprocess import ExtrasRequest
    from webui.testing.upscaler_files import write_realesrgan_pth

    write_realesrgan_pth(services.settings.paths.models_dir / "RealESRGAN" / "RealESRGAN_x4plus.pth")
    assert "RealESRGAN_x4plus" in services.upscale.upscaler_names()
    assert "RealESRGAN_x4plus" in services.upscale.hires_upscaler_names()
    upscalers = services.runtime.upscalers
    assert upscalers.model_scale("RealESRGAN_x4plus") == 4
    source = picture(20, 16)
    big = upscalers.upscale(source, "RealESRGAN_x4plus", (80, 64))
    assert big.size == (80, 64)
    tiled = upscalers.upscale(picture(100, 80), "RealESRGAN_x4plus", (400, 320), tile=64)
    services.options.update({"ESRGAN_tile_overlap": 48}, save=False)  # the Settings option reaches the upscaler
    tiled_exact = upscalers.upscale(picture(100, 80), "RealESRGAN_x4plus", (400, 320), tile=64)
    whole = upscalers.upscale(picture(100, 80), "RealESRGAN_x4plus", (400, 320), tile=0)
    assert tiled.size == whole.size == (400, 320)
    diff = np.abs(np.asarray(tiled_exact).astype(int) - np.asarray(whole).astype(int))
    assert diff.max() <= 1
    results = services.upscale.submit_extras([source, picture(30, 30)], ExtrasRequest(
        scale_by=2, upscaler_1="RealESRGAN_x4plus", upscaler_2="Lanczos", upscaler_2_visibility=0.5)).result()
    assert [r[0].size for r in results] == [(40, 32), (60, 60)]
    assert results[0][1].parent.name == "extras-images"
    assert "Postprocess upscaler: RealESRGAN_x4plus" in Image.open(results[0][1]).info["parameters"]
    hires = services.generation.txt2img(dataclasses.replace(BASE, enable_hr=True, hr_scale=2,
                                                            hr_upscaler="RealESRGAN_x4plus"))
    assert hires.images[0].image.size == (64, 64)


def test_unsafe_or_unknown_upscaler_files_are_refused(services, tmp_path):
    from webui.core.errors import ModelLoadError

    folder = services.settings.paths.esrgan_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError):
        services.runtime.upscalers.upscale(picture(), "junk", (96, 80))
    torch.save({"foo.weight": torch.zeros(3, 3)}, folder / "unknown.pth")
    with pytest.raises(ModelLoadError, match="spandrel"):
        services.runtime.upscalers.upscale(picture(), "unknown", (96, 80))


def test_latent_noise_and_latent_nothing_fill_the_encoded_image(services):
    """A1111's masked content 2/3 work on latents: inside the mask seeded unit noise or zeros, outside the encoded
    image untouched."""
    from webui.engine.generation.run import latent_filled

    pipe = services.runtime.manager.require().pipeline
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((8, 8, 23, 23), fill=255)
    source = resize_image(picture(), 32, 32, 0)
    nothing = latent_filled(pipe, [source], mask, 3, [5])
    noise_a, noise_b = (latent_filled(pipe, [source, source], mask, 2, [5, 6]) for _ in range(2))
    inside = torch.zeros(nothing.shape[-2:], dtype=torch.bool)
    factor = 32 // nothing.shape[-1]  # the tiny VAE's downsampling
    inside[8 // factor:24 // factor, 8 // factor:24 // factor] = True  # the mask's square on the latent grid
    assert torch.all(nothing[..., inside] == 0) and torch.all(nothing[..., ~inside] != 0)
    assert torch.allclose(noise_a[..., ~inside], nothing.repeat(2, 1, 1, 1)[..., ~inside], atol=1e-5)
    assert torch.equal(noise_a, noise_b)  # seeded
    assert not torch.equal(noise_a[0, :, inside], noise_a[1, :, inside])  # one generator per image seed
    assert 0.5 < noise_a[..., inside].std().item() < 1.5
