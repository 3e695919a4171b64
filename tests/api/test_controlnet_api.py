"""The ControlNet extension's API through the whole app as served (with --api-auth): units in
`alwayson_scripts`, detected maps appended to `images`, the infotext round trip, and the `/controlnet/*` routes."""
from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from PIL import Image, ImageDraw

from app import build_app
from tests.conftest import ServerThread, b64_png, free_port, make_data_dir, make_settings
from webui.core.control import ControlUnit, units_from_params
from webui.core.infotext import parse_infotext
from webui.core.settings import Credential, SecuritySettings
from webui.testing.tiny_controlnet import write_tiny_control_lora, write_tiny_controlnet

USER, PASSWORD = "bot", "t0ken"
AUTH = (USER, PASSWORD)


def square(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill="white")
    return image


def decode(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


@pytest.fixture(scope="session")
def served(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("controlnet-api"), tiny_checkpoints, ("sd1",))
    folder = data_dir / "models" / "ControlNet"
    write_tiny_controlnet(folder / "cn-sd1.safetensors", "sd1", layout="ldm", seed=1)
    write_tiny_controlnet(folder / "cn-sdxl.safetensors", "sdxl", seed=2)
    write_tiny_control_lora(folder / "control-lora-canny-rank4.safetensors", "sd1", seed=3)
    security = SecuritySettings(api_auth=(Credential(USER, PASSWORD),))
    services = build_services(make_settings(data_dir, api=True, nowebui=True, security=security))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    with ServerThread(build_app(services), free_port()) as server:
        with httpx.Client(base_url=server.url, timeout=300, auth=AUTH) as client:
            yield client, services
    services.runtime.executor.shutdown()


def body(**fields) -> dict:
    base = {"prompt": "a square", "steps": 3, "width": 32, "height": 32, "seed": 4, "sampler_name": "Euler"}
    return {**base, **fields}


def unit(**fields) -> dict:
    return {"enabled": True, "module": "canny", "model": "cn-sd1", "weight": 0.9, "image": b64_png(square()),
            "resize_mode": "Just Resize", "processor_res": 64, "threshold_a": 60, "threshold_b": 160,
            "guidance_start": 0.0, "guidance_end": 0.8, "pixel_perfect": False, "control_mode": 1, **fields}


@pytest.mark.parametrize("path", ["/controlnet/version", "/controlnet/model_list", "/controlnet/module_list"])
def test_the_routes_need_the_api_credentials(served, path):
    client, _ = served
    assert httpx.get(client.base_url.join(path), timeout=30).status_code == 401
    assert client.get(path).status_code == 200


def test_route_shapes(served):
    client, _ = served
    assert client.get("/controlnet/version").json() == {"version": 2}
    titles = client.get("/controlnet/model_list").json()["model_list"]
    assert [title.rsplit(" [", 1)[0] for title in titles] == ["cn-sd1", "cn-sdxl", "control-lora-canny-rank4"]
    assert all(title.endswith("]") and len(title.rsplit(" [", 1)[1]) == 9 for title in titles)
    modules = client.get("/controlnet/module_list").json()
    assert {"none", "canny", "invert"} <= set(modules["module_list"])
    assert set(modules["module_detail"]) == set(modules["module_list"])
    detected = client.post("/controlnet/detect", json={
        "controlnet_module": "canny", "controlnet_input_images": [b64_png(square(96))],
        "controlnet_processor_res": 64, "controlnet_threshold_a": 50, "controlnet_threshold_b": 150}).json()
    (edges,) = [decode(item) for item in detected["images"]]
    assert edges.size == (64, 64) and detected["info"] == "Success"
    assert 0 < sum(edges.convert("L").histogram()[128:]) < 64 * 64  # some edges, not all white
    bad = client.post("/controlnet/detect", json={"controlnet_module": "canny", "controlnet_input_images": []})
    assert bad.status_code == 422


def test_txt2img_units_run_append_maps_and_round_trip_through_infotext(served):
    client, services = served
    plain = client.post("/sdapi/v1/txt2img", json=body()).json()
    answer = client.post("/sdapi/v1/txt2img", json=body(alwayson_scripts={"ControlNet": {"args": [unit()]}}))
    assert answer.status_code == 200, answer.text
    result, detected = [decode(item) for item in answer.json()["images"]]
    assert result.size == detected.size == (32, 32)
    assert answer.json()["images"][0] != plain["images"][0]
    infotext = json.loads(answer.json()["info"])["infotexts"][0]
    assert result.info["parameters"] == infotext
    (restored,) = units_from_params(parse_infotext(infotext).params)
    title = services.control.model_list()[0]
    assert restored == ControlUnit(module="canny", model=title, weight=0.9, resize_mode="Just Resize",
                                   processor_res=64, threshold_a=60.0, threshold_b=160.0, guidance_end=0.8,
                                   control_mode="My prompt is more important")
    png_info = client.post("/sdapi/v1/png-info", json={"image": answer.json()["images"][0]}).json()
    assert png_info["parameters"]["ControlNet 0"].startswith("Module: canny, Model: cn-sd1 [")


def test_a_control_lora_model_runs_through_the_api(served):
    client, _ = served
    plain = client.post("/sdapi/v1/txt2img", json=body()).json()
    answer = client.post("/sdapi/v1/txt2img", json=body(alwayson_scripts={"controlnet": {"args": [
        unit(model="control-lora-canny-rank4", module="none")]}}))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["images"]) == 1 and answer.json()["images"][0] != plain["images"][0]
    assert "Model: control-lora-canny-rank4 [" in json.loads(answer.json()["info"])["infotexts"][0]


def test_a_reference_unit_needs_no_model(served):
    client, _ = served
    plain = client.post("/sdapi/v1/txt2img", json=body()).json()
    answer = client.post("/sdapi/v1/txt2img", json=body(alwayson_scripts={"controlnet": {"args": [
        unit(module="reference_adain+attn", model="None", threshold_a=0.5)]}}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["images"][0] != plain["images"][0]
    assert "Module: reference_adain+attn, Model: None" in json.loads(answer.json()["info"])["infotexts"][0]
    detail = client.get("/controlnet/module_list").json()["module_detail"]["reference_only"]
    assert detail["model_free"] is True and detail["sliders"][1]["name"].startswith("Style Fidelity")


def test_img2img_unit_with_an_image_and_mask_object_and_the_no_append_option(served):
    client, services = served
    control = unit(module="none", image={"image": b64_png(square()), "mask": b64_png(Image.new("L", (64, 64)))},
                   control_mode="ControlNet is more important", resize_mode=2)
    answer = client.post("/sdapi/v1/img2img", json=body(init_images=[b64_png(square(48))], denoising_strength=0.5,
                                                        alwayson_scripts={"controlnet": {"args": [control]}}))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["images"]) == 1  # module "none": its map is the input, not appended
    assert "Control Mode: ControlNet is more important" in json.loads(answer.json()["info"])["infotexts"][0]
    services.options.set_options({"control_net_no_detectmap": True})
    try:
        quiet = client.post("/sdapi/v1/txt2img", json=body(alwayson_scripts={"controlnet": {"args": [unit()]}}))
    finally:
        services.options.set_options({"control_net_no_detectmap": False})
    assert len(quiet.json()["images"]) == 1


@pytest.mark.parametrize(("fields", "status", "text"), [
    ({"model": "cn-sdxl"}, 422, "is for SDXL models, but the loaded checkpoint 'tiny-sd1.safetensors' is SD 1.x"),
    ({"model": "missing"}, 404, "No ControlNet model named 'missing'"),
    ({"control_mode": "loud"}, 422, "Unknown ControlNet control mode 'loud'"),
    ({"weight": 5}, 422, "weight must be between 0 and 2"),
    ({"image": "bm90IGFuIGltYWdl"}, 422, "could not be decoded"),
])
def test_bad_units_get_clear_errors(served, fields, status, text):
    client, _ = served
    answer = client.post("/sdapi/v1/txt2img", json=body(alwayson_scripts={"controlnet": {"args": [unit(**fields)]}}))
    assert answer.status_code == status and text in answer.json()["detail"]
    assert client.get("/controlnet/version").status_code == 200  # still serving
