"""AuraFlow LoRAs through the real app: the Extra Networks panel (gradio_client) lists the LoRAs of the loaded
model's family only, and `/sdapi/v1/txt2img` on AuraFlow with `<lora:name:1>` changes the image, records the
LoRA's hash, and a later request without it gives the base image again; an SD LoRA there is a warning."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings

torch.set_num_threads(1)

AURA, SD1 = "tiny-auraflow", "tiny-sd1.safetensors"
BODY = {"prompt": "a red circle", "steps": 3, "width": 32, "height": 32, "seed": 4, "cfg_scale": 2,
        "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_checkpoints, tiny_auraflow):
    from webui.engine.models.loader import load_checkpoint
    from webui.services import build_services
    from webui.testing.flow_lora_files import write_flow_lora
    from webui.testing.lora_files import write_adapter
    from webui.testing.tiny_auraflow import build_tiny_auraflow

    data_dir = make_data_dir(tmp_path_factory.mktemp("flow-lora-ui"), tiny_checkpoints, ("sd1",))
    shutil.copytree(tiny_auraflow, data_dir / "models" / "Stable-diffusion" / AURA)
    paths_lora = data_dir / "models" / "Lora"
    write_flow_lora(data_dir / "models" / "LyCORIS" / "aura-lokr.safetensors", build_tiny_auraflow(0),
                    "lycoris_lokr")
    sd_pipe = load_checkpoint(tiny_checkpoints["sd1"], cache_dir=data_dir / "cache").pipeline
    write_adapter(paths_lora / "sd-style.safetensors", sd_pipe, "lora")
    services = build_services(make_settings(data_dir, api=True))
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url
    services.runtime.executor.shutdown()


def lora_cards(url: str) -> list[str]:
    client = Client(url, verbose=False)
    cards, _ = client.predict("", "Name", False, "All", api_name="/txt2img_extra_networks_lora_list")
    return re.findall(r'data-key="([^"]+)"', cards)


def txt2img(api: httpx.Client, prompt: str) -> tuple[np.ndarray, dict]:
    response = api.post("/sdapi/v1/txt2img", json={**BODY, "prompt": prompt,
                                                   "override_settings": {"sd_model_checkpoint": AURA}})
    assert response.status_code == 200, response.text
    data = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(data["images"][0])))
    return np.asarray(image), json.loads(data["info"])


@pytest.mark.slow
def test_panel_and_api_with_auraflow_loras(app):
    services, url = app
    services.models.select_checkpoint(SD1)
    assert lora_cards(url) == ["sd-style"]
    with httpx.Client(base_url=url, timeout=300) as api:
        plain, _ = txt2img(api, "a red circle")
        assert services.models.current_checkpoint() == AURA
        assert lora_cards(url) == ["aura-lokr"]
        tagged, info = txt2img(api, "a red circle <lora:aura-lokr:1>")
        assert 'Lora hashes: "aura-lokr: ' in info["infotexts"][0]
        assert not np.array_equal(plain, tagged)
        again, _ = txt2img(api, "a red circle")
        assert np.array_equal(plain, again)
        wrong, info = txt2img(api, "a red circle <lora:sd-style:1>")
        assert np.array_equal(plain, wrong)
        assert "made for Stable Diffusion and the loaded model is AuraFlow" in json.dumps(info)
