"""Client paths through the real app (Gradio UI + API in one server): output folders set through POST /options or
the Settings tab, Extras "Batch from directory", and what an exposed server shows (no folder fields, no absolute
model paths), each compared with a loopback server."""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client
from PIL import Image
from safetensors.numpy import save_file

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings

TINY = "tiny-sd1.safetensors"
GENERATE = {"prompt": "x", "steps": 1, "width": 32, "height": 32, "seed": 3, "save_images": True,
            "send_images": False}


def serve(tmp_path_factory, tiny_checkpoints, name: str, **settings):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp(name), tiny_checkpoints, ("sd1",))
    (data_dir / "models" / "Lora").mkdir(parents=True)
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(data_dir / "models" / "Lora" / "style.safetensors"))
    services = build_services(make_settings(data_dir, api=True, **settings))
    services.models.select_checkpoint(TINY)
    server = ServerThread(build_app(services), free_port())
    return services, server


@pytest.fixture(scope="module")
def local(tmp_path_factory, tiny_checkpoints):
    services, server = serve(tmp_path_factory, tiny_checkpoints, "confined-local")
    with server:
        yield services, server.url, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


@pytest.fixture(scope="module")
def exposed(tmp_path_factory, tiny_checkpoints):
    """Settings of a `--listen` server (bound to every address); the test reaches it through loopback."""
    services, server = serve(tmp_path_factory, tiny_checkpoints, "confined-exposed", host="0.0.0.0")
    with server:
        yield services, server.url, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


def predict(client: Client, api_name: str, **values):
    """An endpoint by parameter name; parameters not named take their widget's default (or None)."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    args = [values.pop(p["parameter_name"]) if p["parameter_name"] in values
            else p.get("parameter_default") if p.get("parameter_has_default") else None for p in params]
    assert not values, f"{api_name} has no parameters {sorted(values)}"
    return client.predict(*args, api_name=api_name)


def endpoint_parameters(client: Client, api_name: str) -> set[str]:
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    return {p["parameter_name"] for p in params}


def ui_components(url: str) -> dict[str, dict]:
    """The page's components by elem_id (or label), from Gradio's /config."""
    config = httpx.get(f"{url}/config", timeout=60).json()
    found = {}
    for component in config["components"]:
        props = component.get("props", {})
        key = props.get("elem_id") or props.get("label")
        if key:
            found[str(key)] = props
    return found


def saved_images(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png")) if folder.exists() else []


# ----------------------------------------------------------------------------------------------------------------
# Output folders through POST /sdapi/v1/options and the Settings tab


def test_options_refuse_output_folders_outside_the_data_folder(local, tmp_path):
    services, url, _ = local
    data_dir = services.settings.paths.data_dir
    evil = tmp_path / "evil"
    traversal = os.path.relpath(evil, data_dir)
    assert traversal.startswith("../")
    config_before = services.settings.paths.config_file.read_bytes() if services.settings.paths.config_file.exists() \
        else b""
    with httpx.Client(base_url=url, timeout=120) as client:
        for key, value in (("outdir_txt2img_samples", traversal), ("outdir_txt2img_samples", str(evil)),
                           ("outdir_extras_samples", "outputs/..\\..\\x"), ("outdir_txt2img_grids", traversal),
                           ("outdir_samples", "/tmp")):
            answer = client.post("/sdapi/v1/options", json={key: value, "samples_format": "jpg"})
            assert answer.status_code == 422, (key, value, answer.text)
            detail = answer.json()["detail"]
            assert key in detail and ("'..'" in detail or "outside the data folder" in detail
                                      or "backslash" in detail), detail
        assert services.options.get("samples_format") == "png"  # nothing of a refused request is applied
        assert (services.settings.paths.config_file.read_bytes() if services.settings.paths.config_file.exists()
                else b"") == config_before
        assert client.post("/sdapi/v1/txt2img", json=GENERATE).status_code == 200
        assert not evil.exists() and not (tmp_path / "x").exists()
        assert saved_images(services.settings.paths.outputs_dir / "txt2img-images")

        # A1111 clients post every option back: the unchanged ones pass, a folder inside the data folder too.
        everything = client.get("/sdapi/v1/options").json()
        assert client.post("/sdapi/v1/options", json=everything).status_code == 200
        try:
            answer = client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": "outputs/mine"})
            assert answer.status_code == 200, answer.text
            assert client.post("/sdapi/v1/txt2img", json=GENERATE).status_code == 200
            assert saved_images(data_dir / "outputs" / "mine")
        finally:
            client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": "outputs/txt2img-images"})


def test_settings_tab_refuses_output_folders_outside_the_data_folder(local, tmp_path):
    services, _, client = local
    for value in ("../../../" + str(tmp_path / "evil").lstrip("/"), str(tmp_path / "evil"), "/abs/path"):
        message = predict(client, "/apply_settings", outdir_img2img_samples=value)[0]
        assert message.startswith("**Error:**") and "outdir_img2img_samples" in message, message
        assert services.options.get("outdir_img2img_samples") == "outputs/img2img-images"
    assert not (tmp_path / "evil").exists()


# ----------------------------------------------------------------------------------------------------------------
# Extras "Batch from directory"


def test_extras_batch_from_directory_stays_inside(local, tmp_path):
    services, _, client = local
    outside = tmp_path / "pictures"
    outside.mkdir()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(outside / "secret.png")
    inside = services.settings.paths.data_dir / "to-upscale"
    inside.mkdir(exist_ok=True)
    Image.new("RGB", (16, 16), (10, 200, 10)).save(inside / "one.png")
    batch = {"source_v": "Batch from Directory", "resize_mode_v": "Scale by", "scale_v": 2,
             "upscaler_1_v": "Lanczos"}

    gallery, _, _, message = predict(client, "/extras", **batch, input_dir_v=str(outside), output_dir_v="")
    assert gallery == [] and "Input directory" in message and "outside the data folder" in message, message
    message = predict(client, "/extras", **batch, input_dir_v="../" + outside.name, output_dir_v="")[-1]
    assert "contains '..'" in message, message
    message = predict(client, "/extras", **batch, input_dir_v="to-upscale", output_dir_v=str(tmp_path / "out"))[-1]
    assert "Output directory" in message and "outside the data folder" in message, message
    message = predict(client, "/extras", **batch, input_dir_v="to-upscale", output_dir_v="../../out")[-1]
    assert "contains '..'" in message, message
    assert not (tmp_path / "out").exists() and sorted(p.name for p in outside.iterdir()) == ["secret.png"]

    gallery, _, _, message = predict(client, "/extras", **batch, input_dir_v="to-upscale", output_dir_v="upscaled")
    assert message == "" and len(gallery) == 1  # inside the data folder it works as before
    assert [Image.open(p).size for p in saved_images(services.settings.paths.data_dir / "upscaled")] == [(32, 32)]


# ----------------------------------------------------------------------------------------------------------------
# An exposed server: no folder fields, no folder changes, no absolute paths


def test_folder_fields_are_shown_on_loopback_and_hidden_when_exposed(local, exposed):
    for (_, url, client), hidden in ((local, False), (exposed, True)):
        components = ui_components(url)
        settings_folders = {"setting_outdir_txt2img_samples", "setting_outdir_img2img_samples",
                            "setting_outdir_extras_samples"}
        assert settings_folders.isdisjoint(components) is hidden
        assert ("outdir_txt2img_samples" in endpoint_parameters(client, "/apply_settings")) is not hidden
        assert components["extras_batch_directory_tab"].get("visible", True) is not hidden
        train_output = components["train_field_output_dir"]
        assert train_output.get("visible", True) is not hidden
        assert components["train_base_model"]["allow_custom_value"] is not hidden


def test_exposed_server_refuses_folder_changes(exposed):
    services, url, client = exposed
    with httpx.Client(base_url=url, timeout=120) as http:
        answer = http.post("/sdapi/v1/options", json={"outdir_txt2img_samples": "outputs/elsewhere"})
        assert answer.status_code == 422 and "--enable-insecure-extension-access" in answer.json()["detail"]
        everything = http.get("/sdapi/v1/options").json()
        assert http.post("/sdapi/v1/options", json=everything).status_code == 200  # unchanged values pass
    assert services.options.get("outdir_txt2img_samples") == "outputs/txt2img-images"
    message = predict(client, "/extras", source_v="Batch from Directory", input_dir_v="outputs", output_dir_v="",
                      resize_mode_v="Scale by", scale_v=2, upscaler_1_v="Lanczos")[-1]
    assert "Batch from directory cannot be set" in message, message


def test_model_lists_show_relative_paths_when_exposed(local, exposed):
    for (services, url, _), hidden in ((local, False), (exposed, True)):
        data_dir = services.settings.paths.data_dir
        with httpx.Client(base_url=url, timeout=60) as http:
            models = http.get("/sdapi/v1/sd-models").json()
            loras = http.get("/sdapi/v1/loras").json()
        checkpoint = next(row for row in models if row["model_name"] == "tiny-sd1")
        lora = next(row for row in loras if row["name"] == "style")
        if hidden:
            assert checkpoint["filename"] == f"models/Stable-diffusion/{TINY}"
            assert lora["path"] == "models/Lora/style.safetensors"
            assert str(data_dir) not in str(models) + str(loras)
        else:  # A1111's answers on a local server: absolute paths
            assert checkpoint["filename"] == str(data_dir / "models" / "Stable-diffusion" / TINY)
            assert lora["path"] == str(data_dir / "models" / "Lora" / "style.safetensors")
