"""AuraFlow and Flux over A1111's HTTP API: txt2img and img2img run, the family's fields reach the infotext, a
sampler the family cannot use is a 422 that names the alternatives, and /samplers keeps A1111's full list."""
from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from app import build_app
from tests.conftest import AURA, FLUX_DEV, ServerThread, b64_png, free_port, make_settings

BODY = {"prompt": "a (red:1.2) circle", "negative_prompt": "blue", "steps": 2, "width": 32, "height": 32,
        "seed": 5, "cfg_scale": 2, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def api(flow_data):
    from webui.services import build_services

    services = build_services(make_settings(flow_data))
    with ServerThread(build_app(services), free_port()) as server:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            yield client
    services.runtime.executor.shutdown()


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.mark.slow
def test_flux_txt2img_records_family_fields(api):
    body = {**BODY, "override_settings": {"sd_model_checkpoint": FLUX_DEV}, "distilled_cfg_scale": 4.5,
            "shift": 2.5}
    response = api.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    image = decode(response.json()["images"][0])
    infotext = image.info["parameters"]
    assert image.size == (32, 32)
    assert "Distilled CFG Scale: 4.5" in infotext and "Shift: 2.5" in infotext and "Model: tiny-flux" in infotext
    again = decode(api.post("/sdapi/v1/txt2img", json=body).json()["images"][0])
    assert np.array_equal(np.asarray(image), np.asarray(again))


@pytest.mark.slow
def test_auraflow_img2img_and_wrong_sampler(api):
    body = {**BODY, "override_settings": {"sd_model_checkpoint": AURA}}
    init = b64_png(Image.new("RGB", (32, 32), (10, 200, 10)))
    response = api.post("/sdapi/v1/img2img", json={**body, "init_images": [init], "denoising_strength": 0.5})
    assert response.status_code == 200, response.text
    assert "Denoising strength: 0.5" in json.loads(response.json()["info"])["infotexts"][0]
    wrong = api.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "DDIM"})
    assert wrong.status_code == 422
    assert "DDIM" in wrong.json()["detail"] and "Euler" in wrong.json()["detail"]
    names = [s["name"] for s in api.get("/sdapi/v1/samplers").json()]
    assert "DDIM" in names and "Euler" in names
