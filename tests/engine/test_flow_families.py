"""AuraFlow and Flux generation through the services, as a user drives it: each on-disk layout loads (diffusers
folders, Flux full single file, transformer-only with parts from models/text_encoder and models/VAE, fp8 storage),
the same seed gives the same image, samplers follow the family (a wrong one is a ValidationError), img2img,
inpainting, hires fix and X/Y/Z run, and the infotext pasted back reproduces the image."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import (
    AURA,
    FLUX_DEV,
    FLUX_FP8,
    FLUX_FULL,
    FLUX_ONLY,
    FLUX_SCHNELL,
    make_settings,
)
from webui.core.errors import ModelLoadError, ValidationError
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest, Img2ImgInputs

torch.set_num_threads(1)

@pytest.fixture(scope="module")
def flow_services(flow_data):
    from webui.services import build_services

    services = build_services(make_settings(flow_data))
    yield services
    services.runtime.executor.shutdown()


def _request(checkpoint: str, **fields) -> GenerationRequest:
    base = dict(prompt="a red (circle:1.3) on blue", negative_prompt="green", steps=3, width=32, height=32,
                seed=11, sampler_name="Euler", cfg_scale=2.0, checkpoint=checkpoint, save_images=False)
    base.update(fields)
    return GenerationRequest(**base)


def _pixels(result) -> list[np.ndarray]:
    return [np.asarray(image.image) for image in result.images]


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", [AURA, FLUX_DEV, FLUX_SCHNELL, FLUX_FULL, FLUX_ONLY])
def test_txt2img_same_seed_same_image(flow_services, checkpoint):
    first = flow_services.generation.txt2img(_request(checkpoint))
    again = flow_services.generation.txt2img(_request(checkpoint))
    other = flow_services.generation.txt2img(_request(checkpoint, seed=12))
    assert first.images[0].image.size == (32, 32)
    assert np.array_equal(_pixels(first)[0], _pixels(again)[0])
    assert not np.array_equal(_pixels(first)[0], _pixels(other)[0])


@pytest.mark.slow
def test_single_files_equal_the_folder(flow_services):
    """The full checkpoint and transformer + loose parts hold the same weights as the folder: same image."""
    folder = _pixels(flow_services.generation.txt2img(_request(FLUX_DEV)))[0]
    for name in (FLUX_FULL, FLUX_ONLY):
        single = _pixels(flow_services.generation.txt2img(_request(name)))[0]
        assert np.abs(single.astype(int) - folder.astype(int)).max() <= 1, name


@pytest.mark.slow
def test_fp8_transformer_loads_with_layerwise_casting(flow_services):
    result = flow_services.generation.txt2img(_request(FLUX_FP8))
    active = flow_services.runtime.manager.active
    linear = active.pipeline.transformer.transformer_blocks[0].attn.to_q
    assert linear.weight.dtype == torch.float8_e4m3fn
    assert result.images[0].image.size == (32, 32)
    from webui.engine.runtime.pipeline_manager import model_bytes

    transformer = active.pipeline.transformer
    stored = sum(p.numel() * p.element_size() for p in transformer.parameters())
    assert stored < sum(p.numel() * 4 for p in transformer.parameters()) / 2  # fp8 counts one byte a weight
    assert model_bytes(active.pipeline) >= stored  # what the RAM cache budget counts


def test_missing_parts_named(flow_data, tmp_path):
    from webui.engine.families.loading import FlowParts
    from webui.engine.models.loader import load_checkpoint

    only = flow_data / "models" / "Stable-diffusion" / FLUX_ONLY
    with pytest.raises(ModelLoadError) as err:
        load_checkpoint(only, cache_dir=tmp_path, parts=FlowParts(tmp_path / "nothing", tmp_path / "none"))
    text = str(err.value)
    assert "CLIP-L" in text and "T5 text encoder" in text and "VAE" in text
    te_only = FlowParts(flow_data / "models" / "text_encoder", tmp_path / "none")
    with pytest.raises(ModelLoadError, match="Flux VAE"):
        load_checkpoint(only, cache_dir=tmp_path, parts=te_only)


@pytest.mark.slow
def test_sampler_list_and_wrong_sampler(flow_services):
    from webui.core.model_families import samplers_for
    from webui.core.samplers import sampler_names

    assert samplers_for("flux", sampler_names()) == ["DPM++ 2M", "Euler a", "Euler", "Heun"]
    assert "DDIM" in samplers_for("sd1", sampler_names())
    with pytest.raises(ValidationError, match="cannot be used with AuraFlow"):
        flow_services.generation.txt2img(_request(AURA, sampler_name="DDIM"))
    images = {}
    for sampler in ("Euler a", "Heun", "DPM++ 2M"):
        images[sampler] = _pixels(flow_services.generation.txt2img(_request(AURA, sampler_name=sampler)))[0]
    assert not np.array_equal(images["Heun"], images["DPM++ 2M"])
    init = Image.new("RGB", (32, 32), (200, 30, 30))
    for sampler, schedule in (("Heun", "Automatic"), ("DPM++ 2M", "Uniform"), ("Euler a", "Exponential")):
        with warnings.catch_warnings():  # NaN latents show up as a cast warning when the image is made
            warnings.simplefilter("error", RuntimeWarning)
            result = flow_services.generation.txt2img(_request(
                FLUX_DEV, sampler_name=sampler, scheduler=schedule, steps=4, denoising_strength=0.5,
                img2img=Img2ImgInputs(init_images=(init,))))
        assert f"Sampler: {sampler}" in result.images[0].infotext
    for sampler in ("Heun", "DPM++ 2M"):
        with pytest.raises(ValidationError, match="Karras"):
            flow_services.generation.txt2img(_request(AURA, sampler_name=sampler, scheduler="Karras"))


@pytest.mark.slow
def test_shift_and_distilled_cfg_change_the_image_and_round_trip(flow_services):
    base = flow_services.generation.txt2img(_request(FLUX_DEV))
    shifted = flow_services.generation.txt2img(_request(FLUX_DEV, shift=6.0, distilled_cfg_scale=5.0))
    assert not np.array_equal(_pixels(base)[0], _pixels(shifted)[0])
    infotext = shifted.images[0].infotext
    assert "Shift: 6" in infotext and "Distilled CFG Scale: 5" in infotext
    fields = parse_infotext(infotext).to_generation_fields()
    pasted = GenerationRequest(**{k: v for k, v in fields.items() if k in {f.name for f in
                                                                              dataclasses.fields(GenerationRequest)}})
    again = flow_services.generation.txt2img(dataclasses.replace(pasted, checkpoint=FLUX_DEV, save_images=False))
    assert np.array_equal(_pixels(shifted)[0], _pixels(again)[0])


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", [AURA, FLUX_DEV])
def test_img2img_and_inpaint_keep_unmasked_pixels(flow_services, checkpoint):
    init = Image.new("RGB", (32, 32), (200, 30, 30))
    plain = flow_services.generation.txt2img(_request(checkpoint, img2img=Img2ImgInputs(init_images=(init,)),
                                                      denoising_strength=0.6))
    assert plain.images[0].image.size == (32, 32)
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    inpaint = flow_services.generation.txt2img(_request(
        checkpoint, denoising_strength=1.0, img2img=Img2ImgInputs(init_images=(init,), mask=mask, mask_blur=0)))
    out = np.asarray(inpaint.images[0].image)
    assert (out[:4, :4] == (200, 30, 30)).all()
    assert not (out[12:20, 12:20] == (200, 30, 30)).all()
    only_masked = flow_services.generation.txt2img(_request(
        checkpoint, denoising_strength=1.0, img2img=Img2ImgInputs(init_images=(init,), mask=mask, mask_blur=0,
                                                                   inpaint_full_res=True,
                                                                   inpaint_full_res_padding=4)))
    cropped = np.asarray(only_masked.images[0].image)
    assert cropped.shape == (32, 32, 3) and (cropped[:4, :4] == (200, 30, 30)).all()
    assert not np.array_equal(cropped, out)  # the crop was redrawn at full size, not the whole image
    assert "Inpaint area: Only masked" in only_masked.images[0].infotext


@pytest.mark.slow
def test_hires_fix_and_prompt_editing(flow_services):
    result = flow_services.generation.txt2img(_request(AURA, prompt="a [red:blue:0.5] circle", enable_hr=True,
                                                       hr_scale=2.0, hr_second_pass_steps=2,
                                                       denoising_strength=0.5))
    assert result.images[0].image.size == (64, 64)
    assert "Hires upscale: 2" in result.images[0].infotext
    pixel = flow_services.generation.txt2img(_request(FLUX_DEV, enable_hr=True, hr_scale=2.0, hr_upscaler="Lanczos",
                                                      hr_second_pass_steps=2, denoising_strength=0.5))
    assert pixel.images[0].image.size == (64, 64) and "Hires upscaler: Lanczos" in pixel.images[0].infotext


@pytest.mark.slow
def test_xyz_over_steps_on_auraflow(flow_services):
    from webui.core.xyz_axes import AxisInput
    from webui.core.xyz_plan import XyzOptions

    result = flow_services.scripts.run_xyz_plot(_request(AURA), [AxisInput("Steps", "2, 3"),
                                                                  AxisInput("Shift", "0, 4")],
                                                XyzOptions(draw_legend=False))
    cells = [np.asarray(image.image) for image in result.sub_images]
    assert len(cells) == 4 and len(result.grids) == 1 and not np.array_equal(cells[0], cells[1])
    assert not np.array_equal(cells[0], cells[2])  # the shift changes the image
    fields = [parse_infotext(i.infotext).to_generation_fields() for i in result.sub_images]
    assert [(f["steps"], f.get("shift", 0.0)) for f in fields] == [(2, 0.0), (3, 0.0), (2, 4.0), (3, 4.0)]


@pytest.mark.slow
def test_prompt_matrix_and_tiled_upscale_on_auraflow(flow_services):
    from webui.core.prompt_matrix import PromptMatrixOptions
    from webui.core.script_spec import ScriptSpec
    from webui.core.tiled_upscale import TiledUpscaleOptions

    matrix = flow_services.scripts.run_prompt_matrix(_request(AURA, prompt="a circle|red|blue", steps=2),
                                                     PromptMatrixOptions())
    assert len(matrix.sub_images) == 4 and len(matrix.grids) == 1
    init = Image.new("RGB", (32, 32), (40, 90, 200))
    options = TiledUpscaleOptions(upscaler="Lanczos", target_size_type="Scale from image size", custom_scale=2.0,
                                  tile_width=32, tile_height=32, padding=8, mask_blur=4,
                                  save_upscaled_image=False)
    request = _request(AURA, steps=2, denoising_strength=0.3, img2img=Img2ImgInputs(init_images=(init,)))
    result = flow_services.scripts.submit(request, ScriptSpec.tiled_upscale(options)).result()
    assert result.images[-1].image.size == (64, 64)


@pytest.fixture(scope="module")
def flux_pipe(tmp_path_factory):
    from webui.testing.tiny_flux import build_tiny_flux

    return build_tiny_flux(0, tokenizer_dir=tmp_path_factory.mktemp("flux-tok"))


def test_plain_prompt_encodes_as_the_pipeline_and_emphasis_changes_it(flux_pipe):
    """Without emphasis our T5/CLIP encoding is the diffusers pipeline's own; `(word:1.5)` changes the T5 states
    and keeps their mean (Forge's renormalisation)."""
    from webui.core.prompt_attention import parse_attention
    from webui.engine.families.flow_prompts import encode_flux

    with torch.inference_mode():
        ours = encode_flux(flux_pipe, tuple(parse_attention("a red circle")), 64)
        embeds, pooled, _ = flux_pipe.encode_prompt("a red circle", None, max_sequence_length=64)
        weighted = encode_flux(flux_pipe, tuple(parse_attention("a (red:1.5) circle")), 64)
    assert torch.equal(ours.embeds, embeds) and torch.equal(ours.pooled, pooled)
    assert not torch.allclose(weighted.embeds, ours.embeds)
    assert torch.allclose(weighted.embeds.mean(), ours.embeds.mean(), atol=1e-5)
    assert torch.equal(weighted.pooled, ours.pooled)  # CLIP's pooled vector gets the plain text


def test_detection_tells_flux_models_from_flux_loras(flow_data):
    from webui.engine.models.detection import detect_kind_from_keys
    from webui.engine.models.state_dict import read_shapes

    folder = flow_data / "models" / "Stable-diffusion"
    for name in (FLUX_FULL, FLUX_ONLY, FLUX_FP8):
        assert detect_kind_from_keys(read_shapes(folder / name)).family == "flux", name
    lora_like = ["img_in.lora_A.weight", "double_blocks.0.img_attn.qkv.lora_A.weight",
                 "single_blocks.0.linear1.lora_A.weight", "final_layer.linear.lora_A.weight"]
    assert detect_kind_from_keys(lora_like).kind != "checkpoint"


def test_controlnet_units_on_a_flow_model_are_a_clear_error(flow_services):
    """AuraFlow and Flux have a transformer, not a UNet: ControlNet, T2I-Adapter and reference units are refused
    with a message before anything runs, and the model keeps working."""
    from webui.core.control import ControlUnit

    image = Image.new("RGB", (32, 32), "white")
    for unit in (ControlUnit(module="reference_only", image=image), ControlUnit(module="canny", model="any",
                                                                                  image=image)):
        with pytest.raises(ValidationError, match="ControlNet units work with SD 1.x, SD 2.x and SDXL checkpoints"):
            flow_services.generation.txt2img(_request(AURA, control_units=(unit,)))
    assert flow_services.generation.txt2img(_request(AURA)).images[0].image.size == (32, 32)
