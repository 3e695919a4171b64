"""The request builder: one table of defaults, A1111's "null/empty means default" rules, and conversions."""
from __future__ import annotations

import dataclasses

import pytest

from webui.core.errors import ValidationError
from webui.core.request_builder import IMG2IMG_DEFAULTS, REQUEST_DEFAULTS, build_request
from webui.core.requests import GenerationRequest, Img2ImgInputs


def test_an_empty_mapping_is_the_default_request():
    assert build_request({}) == GenerationRequest()


def test_the_defaults_table_is_the_request_dataclass():
    """One table: every request field, with the dataclass's own default (nothing restated elsewhere)."""
    fields = {item.name for item in dataclasses.fields(GenerationRequest)}
    assert set(REQUEST_DEFAULTS) == fields
    assert REQUEST_DEFAULTS["steps"] == GenerationRequest().steps
    assert set(IMG2IMG_DEFAULTS) == {item.name for item in dataclasses.fields(Img2ImgInputs)}


def test_null_fields_take_the_defaults():
    fields = {name: None for name in REQUEST_DEFAULTS}
    assert build_request(fields) == GenerationRequest()


def test_server_defaults_replace_table_values():
    request = build_request({"prompt": "a cat"}, GenerationRequest(clip_skip=2))
    assert request.clip_skip == 2
    assert build_request({"clip_skip": 3}, GenerationRequest(clip_skip=2)).clip_skip == 3


def test_empty_values_mean_default_where_a1111_treats_them_so():
    request = build_request({"width": 0, "height": 0, "sampler_name": "", "scheduler": "", "batch_size": 0,
                             "n_iter": 0, "hr_upscaler": ""})
    assert (request.width, request.height, request.batch_size, request.n_iter) == (512, 512, 1, 1)
    assert (request.sampler_name, request.scheduler, request.hr_upscaler) == ("Euler a", "Automatic", "Latent")


def test_zero_stays_zero_where_it_is_a_value():
    request = build_request({"seed": 0, "steps": 0, "cfg_scale": 0, "denoising_strength": 0})
    assert (request.seed, request.steps, request.cfg_scale, request.denoising_strength) == (0, 0, 0.0, 0.0)
    with pytest.raises(ValidationError):
        request.validate()


def test_gradio_floats_become_ints_and_tuples():
    request = build_request({"steps": 12.0, "seed": 42.0, "width": 640.0, "styles": ["a", "b"], "cfg_scale": 5})
    assert (request.steps, request.seed, request.width) == (12, 42, 640)
    assert isinstance(request.steps, int) and isinstance(request.cfg_scale, float)
    assert request.styles == ("a", "b")


def test_sampler_index_is_an_alias_and_negative_seed_resize_is_off():
    request = build_request({"sampler_index": "DDIM", "seed_resize_from_w": -1, "seed_resize_from_h": -1})
    assert request.sampler_name == "DDIM"
    assert (request.seed_resize_from_w, request.seed_resize_from_h) == (0, 0)
    assert build_request({"sampler_name": "Euler", "sampler_index": "DDIM"}).sampler_name == "Euler"


def test_unknown_fields_are_ignored():
    assert build_request({"alwayson_scripts": {}, "send_images": True}) == GenerationRequest()


def test_init_images_make_an_img2img_request_with_table_defaults():
    image = object()
    request = build_request({"init_images": [image], "inpainting_fill": None, "inpaint_full_res": 1})
    assert request.img2img == Img2ImgInputs(init_images=(image,), inpaint_full_res=True)
    assert build_request({"prompt": "x"}).img2img is None
