"""Whole answers of the real app (UI + API in one server, tiny SD1 model) checked against pydantic models of
A1111's answers, the way typed A1111 clients check them: every field A1111 sends present, with A1111's type.

The models mirror A1111's `modules/api/models.py` (TextToImageResponse, ImageToImageResponse, PNGInfoResponse),
`Processed.js()` for the `info` string, and `parse_generation_parameters` for png-info's `parameters`. Extra
fields are allowed (A1111 clients ignore them); values are checked strictly (no "20" for 20, no 0 for false).
"""
from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from app import build_app
from tests.conftest import ServerThread, free_port

BODY = {"prompt": "a red circle", "negative_prompt": "blurry", "steps": 2, "width": 32, "height": 32, "seed": 77,
        "cfg_scale": 5, "sampler_name": "Euler", "batch_size": 2}


class A1111Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ImagesAnswer(A1111Model):
    """TextToImageResponse / ImageToImageResponse."""

    images: list[str] | None
    parameters: dict[str, Any]
    info: str


class ProcessedInfo(A1111Model):
    """`Processed.js()`: every key A1111 always sends."""

    prompt: str
    all_prompts: list[str]
    negative_prompt: str
    all_negative_prompts: list[str]
    seed: int
    all_seeds: list[int]
    subseed: int
    all_subseeds: list[int]
    subseed_strength: float
    width: int
    height: int
    sampler_name: str
    cfg_scale: float
    steps: int
    batch_size: int
    restore_faces: bool
    face_restoration_model: str | None
    sd_model_name: str | None
    sd_model_hash: str | None
    sd_vae_name: str | None
    sd_vae_hash: str | None
    seed_resize_from_w: int
    seed_resize_from_h: int
    denoising_strength: float | None
    extra_generation_params: dict[str, Any]
    index_of_first_image: int
    infotexts: list[str]
    styles: list[str]
    job_timestamp: str
    clip_skip: int
    is_using_inpainting_conditioning: bool
    version: str | None


class PngInfoAnswer(A1111Model):
    """PNGInfoResponse."""

    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]


class GenerationParameters(A1111Model):
    """`parse_generation_parameters`: infotext values stay strings, A1111's defaults keep their own types."""

    prompt: str = Field(alias="Prompt")
    negative_prompt: str = Field(alias="Negative prompt")
    steps: str = Field(alias="Steps")
    sampler: str = Field(alias="Sampler")
    cfg_scale: str = Field(alias="CFG scale")
    seed: str = Field(alias="Seed")
    width: str = Field(alias="Size-1")
    height: str = Field(alias="Size-2")
    model_hash: str = Field(alias="Model hash")
    clip_skip: str = Field(alias="Clip skip")
    schedule_type: str = Field(alias="Schedule type")
    hires_resize_x: int = Field(alias="Hires resize-1")
    hires_resize_y: int = Field(alias="Hires resize-2")
    masked_area_padding: int = Field(alias="Masked area padding")
    rng: str = Field(alias="RNG")
    refiner_switch_by_steps: bool = Field(alias="Refiner switch by sampling steps")


class EmptyObject(BaseModel):
    """`{}`: what A1111's /interrupt returns (a JSON object, not null)."""

    model_config = ConfigDict(extra="forbid", strict=True)


@pytest.fixture(scope="module")
def api(sd1_services):
    with ServerThread(build_app(sd1_services), free_port()) as server:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            yield client


@pytest.fixture(scope="module")
def txt2img_answer(api):
    response = api.post("/sdapi/v1/txt2img", json=BODY)
    assert response.status_code == 200, response.text
    return response.json()


def test_txt2img_answer_and_info_have_a1111s_shape(txt2img_answer):
    answer = ImagesAnswer.model_validate(txt2img_answer)
    info = ProcessedInfo.model_validate_json(answer.info)
    assert info.all_seeds == [77, 78] and len(info.infotexts) == 2
    assert info.restore_faces is False and info.face_restoration_model is None
    assert info.sd_model_name == "tiny-sd1" and info.sd_model_hash and info.sd_model_hash in info.infotexts[0]
    assert info.sd_vae_name is None and info.is_using_inpainting_conditioning is False
    assert f"Schedule type: {info.extra_generation_params['Schedule type']}" in info.infotexts[0]
    assert info.version and f"Version: {info.version}" in info.infotexts[0]


def test_img2img_answer_and_info_have_a1111s_shape(api, txt2img_answer):
    body = {**BODY, "batch_size": 1, "init_images": [txt2img_answer["images"][0]], "denoising_strength": 0.5}
    response = api.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    answer = ImagesAnswer.model_validate(response.json())
    info = ProcessedInfo.model_validate_json(answer.info)
    assert info.denoising_strength == 0.5 and "Denoising strength: 0.5" in info.infotexts[0]
    assert answer.parameters["init_images"] is None  # A1111 leaves them out unless include_init_images


def test_png_info_of_an_image_the_app_made(api, txt2img_answer):
    png = txt2img_answer["images"][1]
    response = api.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64," + png})
    assert response.status_code == 200, response.text
    answer = PngInfoAnswer.model_validate(response.json())
    assert answer.info == Image.open(io.BytesIO(base64.b64decode(png))).info["parameters"]
    parameters = GenerationParameters.model_validate(answer.parameters)
    assert (parameters.prompt, parameters.negative_prompt) == ("a red circle", "blurry")
    assert (parameters.steps, parameters.seed, parameters.width, parameters.height) == ("2", "78", "32", "32")
    assert (parameters.sampler, parameters.cfg_scale, parameters.clip_skip) == ("Euler", "5", "1")
    assert parameters.model_hash == json.loads(txt2img_answer["info"])["sd_model_hash"]


def test_png_info_of_an_image_without_infotext(api):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    response = api.post("/sdapi/v1/png-info", json={"image": base64.b64encode(buffer.getvalue()).decode()})
    answer = PngInfoAnswer.model_validate(response.json())
    assert answer.info == "" and answer.parameters["Prompt"] == "" and answer.parameters["Clip skip"] == "1"


def test_interrupt_answers_an_object_and_skip_answers_null_as_a1111_does(api):
    response = api.post("/sdapi/v1/interrupt")
    assert response.status_code == 200
    EmptyObject.model_validate(response.json())
    skip = api.post("/sdapi/v1/skip")
    assert skip.status_code == 200 and skip.json() is None  # A1111's skip() returns nothing
    assert api.get("/sdapi/v1/progress").status_code == 200  # still serving


def test_options_and_refresh_answers_are_a1111s_null(api):
    # A1111's set_config and refresh_* return None: a JSON null, not {}.
    assert api.post("/sdapi/v1/options", json={}).json() is None
    for route in ("refresh-checkpoints", "refresh-vae", "refresh-loras", "refresh-embeddings"):
        response = api.post(f"/sdapi/v1/{route}")
        assert response.status_code == 200 and response.json() is None, route
