"""The first A1111 endpoints over real HTTP, with the tiny SD1 model: shapes A1111 clients rely on."""
from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port

BODY = {"prompt": "a red circle", "negative_prompt": "", "steps": 2, "width": 32, "height": 32, "seed": 77,
        "cfg_scale": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def api(sd1_services):
    with ServerThread(build_app(sd1_services), free_port()) as server:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            yield client


def decode(b64: str) -> Image.Image:
    assert not b64.startswith("data:")
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_txt2img_returns_plain_base64_pngs_with_infotext(api):
    response = api.post("/sdapi/v1/txt2img", json={**BODY, "batch_size": 2, "some_unknown_field": 1,
                                                   "restore_faces": None, "styles": None})
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["images"]) == 2
    image = decode(data["images"][0])
    assert image.size == (32, 32)
    assert "Seed: 77" in image.info["parameters"]
    info = json.loads(data["info"])
    assert info["seed"] == 77
    assert info["all_seeds"] == [77, 78]
    assert len(info["infotexts"]) == 2 and "Seed: 78" in info["infotexts"][1]
    assert data["parameters"]["prompt"] == "a red circle"


def test_same_seed_same_image_over_http(api):
    first = decode(api.post("/sdapi/v1/txt2img", json=BODY).json()["images"][0])
    second = decode(api.post("/sdapi/v1/txt2img", json=BODY).json()["images"][0])
    assert np.array_equal(np.asarray(first), np.asarray(second))


def test_sampler_name_wins_over_sampler_index(api):
    data = api.post("/sdapi/v1/txt2img", json={**BODY, "sampler_index": "DDIM", "sampler_name": "Heun"}).json()
    assert "Sampler: Heun" in json.loads(data["info"])["infotexts"][0]
    legacy = api.post("/sdapi/v1/txt2img", json={**BODY, "sampler_name": None, "sampler_index": "DPM++ 2M Karras"})
    assert "Schedule type: Karras" in json.loads(legacy.json()["info"])["infotexts"][0]


@pytest.mark.parametrize(("patch", "status", "text"), [
    ({"sampler_name": "Bogus"}, 400, "Unknown sampler"),
    ({"width": 33}, 422, "divisible by 8"),
])
def test_bad_requests_get_readable_errors(api, patch, status, text):
    response = api.post("/sdapi/v1/txt2img", json={**BODY, **patch})
    assert response.status_code == status
    assert text in response.text
    assert api.post("/sdapi/v1/txt2img", json=BODY).status_code == 200


def test_sd_models_and_samplers(api):
    models = api.get("/sdapi/v1/sd-models").json()
    titles = [m["title"] for m in models]
    assert any(t.startswith("tiny-sd1.safetensors") for t in titles)
    for row in models:
        assert {"title", "model_name", "hash", "filename"} <= set(row)
    loaded = next(m for m in models if m["model_name"] == "tiny-sd1")
    assert loaded["title"] == f"tiny-sd1.safetensors [{loaded['hash']}]"
    names = [s["name"] for s in api.get("/sdapi/v1/samplers").json()]
    assert "Euler a" in names and "DPM++ 2M" in names


def test_options_switch_checkpoint_and_back(api):
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny-sd1.safetensors"
    assert api.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-sd1-other"}).status_code == 200
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny-sd1-other.safetensors"
    info = json.loads(api.post("/sdapi/v1/txt2img", json=BODY).json()["info"])
    assert info["sd_model_name"] == "tiny-sd1-other"
    bad = api.post("/sdapi/v1/options", json={"sd_model_checkpoint": "nope.safetensors"})
    assert bad.status_code == 404 and "No checkpoint named" in bad.text
    # A1111 title with hash suffix works too.
    title = next(m["title"] for m in api.get("/sdapi/v1/sd-models").json() if m["model_name"] == "tiny-sd1")
    assert api.post("/sdapi/v1/options", json={"sd_model_checkpoint": title}).status_code == 200
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny-sd1.safetensors"


def test_override_settings_apply_to_one_request(api):
    data = api.post("/sdapi/v1/txt2img", json={**BODY, "override_settings": {"CLIP_stop_at_last_layers": 2}})
    assert "Clip skip: 2" in json.loads(data.json()["info"])["infotexts"][0]
    plain = api.post("/sdapi/v1/txt2img", json=BODY)
    assert "Clip skip" not in json.loads(plain.json()["info"])["infotexts"][0]


def test_openapi_docs(api):
    assert api.get("/docs").status_code == 200
    assert "/sdapi/v1/txt2img" in api.get("/openapi.json").json()["paths"]


def test_variation_fields_styles_and_png_info(api, sd1_services):
    sd1_services.styles.save_style("api-style", "{prompt}, masterpiece", "lowres")
    response = api.post("/sdapi/v1/txt2img", json={**BODY, "subseed": 5, "subseed_strength": 0.25,
                                                   "styles": ["api-style"], "seed_resize_from_w": -1})
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    assert info["all_subseeds"] == [5]
    text = info["infotexts"][0]
    assert text.startswith("a red circle, masterpiece\nNegative prompt: lowres")
    assert "Variation seed: 5" in text and "Variation seed strength: 0.25" in text
    styles = api.get("/sdapi/v1/prompt-styles").json()
    assert {"name": "api-style", "prompt": "{prompt}, masterpiece", "negative_prompt": "lowres"} in styles
    png = response.json()["images"][0]
    parsed = api.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64," + png}).json()
    assert parsed["info"] == text
    assert parsed["parameters"]["Variation seed"] == "5"  # A1111 keeps infotext values as text
    assert api.post("/sdapi/v1/png-info", json={"image": "bm90IGFuIGltYWdl"}).status_code == 422
    assert api.post("/sdapi/v1/txt2img", json={**BODY, "styles": ["nope"]}).status_code == 422


def test_embeddings_endpoint(api):
    data = api.get("/sdapi/v1/embeddings").json()
    assert set(data) == {"loaded", "skipped"}


def test_xyz_and_prompt_matrix_through_script_args(api):
    body = {**BODY, "steps": 1, "script_name": "X/Y/Z plot",
            "script_args": ["Steps", "1,2", None, "CFG Scale", "3,5", None, "Nothing", "", None,
                            True, True, False, False, False, False, False, 0]}
    response = api.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["images"]) == 1 + 4  # the grid, then the sub-images
    grid = decode(data["images"][0])
    assert "Script: X/Y/Z plot" in grid.info["parameters"]
    matrix = api.post("/sdapi/v1/txt2img", json={**BODY, "steps": 1, "prompt": "a cat|red|blue",
                                                  "script_name": "prompt matrix", "script_args": [False, False]})
    assert matrix.status_code == 200, matrix.text
    assert len(matrix.json()["images"]) >= 1
    assert "prompt matrix" in [n.lower() for n in api.get("/sdapi/v1/scripts").json()["txt2img"]]
    bad = api.post("/sdapi/v1/txt2img", json={**BODY, "script_name": "nope"})
    assert bad.status_code == 422 and "Unknown script" in bad.text
