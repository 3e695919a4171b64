"""Every /sdapi/v1 endpoint over real HTTP with tiny models, the API served alone (--nowebui): status codes,
shapes, live previews, concurrency without crossed results, and model-file safety through the API."""
from __future__ import annotations

import base64
import io
import json
import pickle
import shutil
import threading

import httpx
import pytest
import torch
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, b64_png, free_port, make_data_dir, make_settings
from webui.core.errors import ModelLoadError
from webui.testing.lora_files import write_adapter
from webui.testing.tiny_models import write_tiny_vae

BODY = {"prompt": "a red circle", "steps": 2, "width": 32, "height": 32, "seed": 11, "cfg_scale": 5,
        "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("api-endpoints"), tiny_checkpoints, ("sd1", "sd1-other"))
    write_tiny_vae(data_dir / "models" / "VAE" / "other.vae.safetensors", seed=3)
    services = build_services(make_settings(data_dir, api=True, nowebui=True))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    yield services
    services.runtime.executor.shutdown()


@pytest.fixture(scope="module")
def server(services):
    with ServerThread(build_app(services), free_port()) as running:
        yield running


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def decode(data: str) -> Image.Image:
    assert not data.startswith("data:")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def infotext(response: httpx.Response, index: int = 0) -> str:
    return json.loads(response.json()["info"])["infotexts"][index]


# ----- the API alone ----------------------------------------------------------------------------------------------

def test_nowebui_serves_the_api_and_docs_only(api):
    home = api.get("/")
    assert home.status_code == 200 and home.json()["docs"] == "/docs"
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for route in ("txt2img", "img2img", "extra-single-image", "extra-batch-images", "png-info", "progress",
                  "interrupt", "skip", "options", "refresh-checkpoints", "refresh-vae", "refresh-loras",
                  "refresh-embeddings", "cmd-flags",
                  "samplers", "schedulers", "upscalers", "latent-upscale-modes", "sd-models", "sd-vae", "loras",
                  "embeddings", "prompt-styles", "scripts", "memory"):
        assert f"/sdapi/v1/{route}" in paths, route
    assert api.get("/gradio_api/info").status_code == 404


# ----- tables -----------------------------------------------------------------------------------------------------

def test_tables(api):
    schedulers = api.get("/sdapi/v1/schedulers").json()
    assert {"name": "karras", "label": "Karras"}.items() <= next(s for s in schedulers
                                                                if s["label"] == "Karras").items()
    upscalers = api.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in upscalers] == ["None", "Lanczos", "Nearest"]
    assert set(upscalers[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
    modes = [m["name"] for m in api.get("/sdapi/v1/latent-upscale-modes").json()]
    assert modes[0] == "Latent" and "Latent (nearest-exact)" in modes
    assert api.get("/sdapi/v1/scripts").json() == {"txt2img": ["x/y/z plot", "prompt matrix"],
                                                   "img2img": ["x/y/z plot", "prompt matrix", "ultimate sd upscale"]}
    assert api.get("/sdapi/v1/prompt-styles").status_code == 200
    assert set(api.get("/sdapi/v1/embeddings").json()) == {"loaded", "skipped"}
    assert api.post("/sdapi/v1/refresh-embeddings").status_code == 200


def test_memory(api):
    data = api.get("/sdapi/v1/memory").json()
    ram = data["ram"]
    assert 0 < ram["used"] < ram["total"] and ram["free"] == pytest.approx(ram["total"] - ram["used"])
    if torch.cuda.is_available():
        assert {"system", "active", "allocated", "reserved", "events"} <= set(data["cuda"])
    else:
        assert data["cuda"] == {"error": "unavailable"}


def test_interrupt_and_skip_when_idle(api):
    assert api.post("/sdapi/v1/interrupt").status_code == 200
    assert api.post("/sdapi/v1/skip").status_code == 200


# ----- models, VAEs, LoRAs, refresh -------------------------------------------------------------------------------

def test_refresh_checkpoints_vae_and_loras(api, services, tiny_checkpoints):
    paths = services.settings.paths
    shutil.copy(tiny_checkpoints["sd1"], paths.ckpt_dir / "added-later.safetensors")
    write_tiny_vae(paths.vae_dir / "late.vae.safetensors", seed=4)
    assert "added-later" not in [m["model_name"] for m in api.get("/sdapi/v1/sd-models").json()]
    assert api.post("/sdapi/v1/refresh-checkpoints").status_code == 200
    assert "added-later" in [m["model_name"] for m in api.get("/sdapi/v1/sd-models").json()]
    assert api.post("/sdapi/v1/refresh-vae").status_code == 200
    vaes = api.get("/sdapi/v1/sd-vae").json()
    assert {"model_name": "late.vae.safetensors", "filename": str(paths.vae_dir / "late.vae.safetensors")} in vaes
    assert api.get("/sdapi/v1/loras").json() == []
    write_adapter(paths.lora_dir / "tiny-style.safetensors", services.runtime.manager.require().pipeline, "lora",
                  metadata={"ss_output_name": "tiny_style"})
    assert api.post("/sdapi/v1/refresh-loras").status_code == 200
    loras = api.get("/sdapi/v1/loras").json()
    assert [(row["name"], row["alias"]) for row in loras] == [("tiny-style", "tiny_style")]
    assert set(loras[0]) == {"name", "alias", "path", "metadata"}


def test_options_switch_vae_and_back(api):
    assert api.get("/sdapi/v1/options").json()["sd_vae"] == "Automatic"
    assert api.post("/sdapi/v1/options", json={"sd_vae": "other.vae.safetensors"}).status_code == 200
    assert api.get("/sdapi/v1/options").json()["sd_vae"] == "other.vae.safetensors"
    assert "VAE: other.vae.safetensors" in infotext(api.post("/sdapi/v1/txt2img", json=BODY))
    missing = api.post("/sdapi/v1/options", json={"sd_vae": "nope.safetensors"})
    assert missing.status_code == 404 and "No VAE named" in missing.text
    assert api.post("/sdapi/v1/options", json={"sd_vae": "None"}).status_code == 200
    assert api.get("/sdapi/v1/options").json()["sd_vae"] == "None"
    assert "VAE:" not in infotext(api.post("/sdapi/v1/txt2img", json=BODY))
    assert api.post("/sdapi/v1/options", json={"sd_vae": "Automatic"}).status_code == 200


def test_options_keep_unknown_keys(api):
    assert api.post("/sdapi/v1/options", json={"some_a1111_option": 3, "samples_format": "png"}).status_code == 200
    assert api.get("/sdapi/v1/options").json()["some_a1111_option"] == 3
    bad = api.post("/sdapi/v1/options", json={"samples_format": "tiff"})
    assert bad.status_code == 422 and "samples_format" in bad.text


# ----- generation -------------------------------------------------------------------------------------------------

def test_txt2img_with_hires_fix(api):
    response = api.post("/sdapi/v1/txt2img", json={**BODY, "enable_hr": True, "hr_scale": 2, "hr_upscaler": None,
                                                   "hr_second_pass_steps": 1, "denoising_strength": 0.5})
    assert response.status_code == 200, response.text
    assert decode(response.json()["images"][0]).size == (64, 64)
    text = infotext(response)
    assert "Hires upscale: 2" in text and "Hires upscaler: Latent" in text and "Denoising strength: 0.5" in text


def test_img2img_and_inpaint(api):
    source = Image.new("RGB", (48, 40), (200, 30, 30))
    body = {**BODY, "init_images": ["data:image/png;base64," + b64_png(source)], "denoising_strength": 0.6,
            "resize_mode": 1, "unknown_field": None, "mask_blur": None}
    response = api.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert decode(data["images"][0]).size == (32, 32)
    assert "Denoising strength: 0.6" in infotext(response) and "Seed: 11" in infotext(response)
    assert data["parameters"]["init_images"] is None
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    inpaint = api.post("/sdapi/v1/img2img", json={**body, "mask": b64_png(mask), "inpainting_fill": 1,
                                                  "inpaint_full_res": False, "include_init_images": True})
    assert inpaint.status_code == 200, inpaint.text
    assert "Mask blur: 4" in infotext(inpaint)
    assert inpaint.json()["parameters"]["init_images"] == body["init_images"]
    assert api.post("/sdapi/v1/img2img", json={**BODY, "init_images": ["bm90IGFuIGltYWdl"]}).status_code == 422
    assert api.post("/sdapi/v1/img2img", json={**BODY, "init_images": []}).status_code == 422


def test_extras_single_and_batch(api):
    image = b64_png(Image.new("RGB", (20, 10), (0, 128, 255)))
    single = api.post("/sdapi/v1/extra-single-image", json={"image": image, "upscaler_1": "Lanczos",
                                                            "upscaling_resize": 2, "gfpgan_visibility": 0})
    assert single.status_code == 200, single.text
    assert decode(single.json()["image"]).size == (40, 20)
    assert "Postprocess upscaler: Lanczos" in single.json()["html_info"]
    batch = api.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": image, "name": "a.png"}, {"data": image, "name": "b.png"}], "resize_mode": 1,
        "upscaling_resize_w": 16, "upscaling_resize_h": 16, "upscaler_1": "Nearest"})
    assert batch.status_code == 200, batch.text
    assert [decode(img).size for img in batch.json()["images"]] == [(16, 16), (16, 16)]
    unknown = api.post("/sdapi/v1/extra-single-image", json={"image": image, "upscaler_1": "NoSuchUpscaler"})
    assert unknown.status_code == 404 and "No upscaler named" in unknown.text


def test_progress_when_idle(api):
    data = api.get("/sdapi/v1/progress").json()
    assert data["progress"] == 0 and data["current_image"] is None
    assert {"job_count", "sampling_step", "sampling_steps", "interrupted", "skipped",
            "stopping_generation"} <= set(data["state"])


def test_progress_shows_a_live_preview_while_sampling(api, services):
    """A test hook holds the sampler at its second UNet call, so progress is read mid-job, deterministically."""
    unet = services.runtime.manager.require().pipeline.unet
    reached, release = threading.Event(), threading.Event()
    calls = []

    def hold(module, args):
        calls.append(1)
        if len(calls) == 2:
            reached.set()
            release.wait(60)

    handle = unet.register_forward_pre_hook(hold)
    try:
        with httpx.Client(base_url=str(api.base_url), timeout=120) as other:
            result: list[httpx.Response] = []
            worker = threading.Thread(target=lambda: result.append(other.post(
                "/sdapi/v1/txt2img", json={**BODY, "steps": 4, "cfg_scale": 1})))
            worker.start()
            assert reached.wait(60)
            data = api.get("/sdapi/v1/progress").json()
            skipped = api.get("/sdapi/v1/progress", params={"skip_current_image": "true"}).json()
            release.set()
            worker.join(60)
    finally:
        release.set()
        handle.remove()
    assert data["state"]["job_count"] == 1 and data["state"]["sampling_steps"] == 4
    preview = decode(data["current_image"])
    assert preview.format == "PNG" and preview.mode == "RGB" and min(preview.size) >= 1
    assert skipped["current_image"] is None
    assert result[0].status_code == 200
    assert api.get("/sdapi/v1/progress").json()["current_image"] is None


def test_three_clients_at_once_get_their_own_images(server):
    """Three API clients post at the same moment; the one executor runs them in turn and nobody gets another
    client's images."""
    seeds = (101, 202, 303)
    responses: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(len(seeds))

    def client(seed: int) -> None:
        with httpx.Client(base_url=server.url, timeout=300) as own:
            barrier.wait()
            responses[seed] = own.post("/sdapi/v1/txt2img", json={**BODY, "seed": seed, "batch_size": 2,
                                                                    "prompt": f"prompt {seed}"})

    threads = [threading.Thread(target=client, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for seed in seeds:
        response = responses[seed]
        assert response.status_code == 200, response.text
        info = json.loads(response.json()["info"])
        assert info["seed"] == seed and info["all_seeds"] == [seed, seed + 1]
        assert info["prompt"] == f"prompt {seed}"
        for index, image in enumerate(response.json()["images"]):
            text = decode(image).info["parameters"]
            assert text.startswith(f"prompt {seed}\n") and f"Seed: {seed + index}," in text


# ----- model file safety ------------------------------------------------------------------------------------------

class _RunsCode:
    """Unpickling this would call `open(marker, "w")`: creating the marker file proves code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused_and_runs_nothing(api, services, tmp_path):
    marker = tmp_path / "pwned.txt"
    evil = services.settings.paths.ckpt_dir / "evil.ckpt"
    with evil.open("wb") as fh:
        pickle.dump({"state_dict": {"model.diffusion_model.x": _RunsCode(str(marker))}}, fh, protocol=2)
    before = api.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    try:
        assert api.post("/sdapi/v1/refresh-checkpoints").status_code == 200
        response = api.post("/sdapi/v1/options", json={"sd_model_checkpoint": "evil.ckpt"})
        assert response.status_code == 400
        assert "Loading 'evil.ckpt' was refused: it needs to run code" in response.json()["detail"]
        assert not marker.exists()
        assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == before
        assert api.post("/sdapi/v1/txt2img", json=BODY).status_code == 200
    finally:
        evil.unlink()
        services.models.refresh_models()


def test_corrupt_safetensors_is_reported_in_the_api_and_the_ui_path(api, services):
    corrupt = services.settings.paths.ckpt_dir / "broken.safetensors"
    corrupt.write_bytes((10**9).to_bytes(8, "little") + b'{"a": ')
    try:
        api.post("/sdapi/v1/refresh-checkpoints")
        response = api.post("/sdapi/v1/options", json={"sd_model_checkpoint": "broken.safetensors"})
        assert response.status_code == 400
        assert "'broken.safetensors' is corrupt or truncated" in response.json()["detail"]
        with pytest.raises(ModelLoadError, match="corrupt or truncated"):
            services.models.select_checkpoint("broken.safetensors")  # what the UI's checkpoint dropdown calls
        assert services.models.current_checkpoint() == "tiny-sd1.safetensors"
    finally:
        corrupt.unlink()
        services.models.refresh_models()


def test_cmd_flags_over_http_hide_credentials(tmp_path):
    """cmd-flags shows every flag as A1111 does (argparse names and values), behind --api-auth, secrets hidden."""
    import launch
    from webui.services import build_services

    settings = launch.build_settings(["--data-dir", str(tmp_path), "--nowebui", "--use-cpu", "all", "--medvram",
                                      "--xformers", "--api-auth", "user:pass:word", "--no-demo-model"])
    services = build_services(settings)
    try:
        with ServerThread(build_app(services), free_port()) as server, \
                httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.get("/sdapi/v1/cmd-flags").status_code == 401
            flags = client.get("/sdapi/v1/cmd-flags", auth=("user", "pass:word")).json()
    finally:
        services.runtime.executor.shutdown()
    assert flags["medvram"] is True and flags["xformers"] is True and flags["lowvram"] is False
    assert flags["nowebui"] is True and flags["use_cpu"] == ["all"] and flags["port"] is None
    assert flags["api_auth"] == "<hidden>" and flags["gradio_auth"] is None
    assert "pass:word" not in json.dumps(flags)
    # the CPU fast path's choice for this machine (auto: bfloat16 only with native bf16 instructions)
    assert flags["cpu_precision"] == "auto" and flags["compile"] is False
    assert flags["precision_in_use"].startswith("cpu: ")
    fast = services.runtime.manager.device.denoiser_dtype is not None
    assert flags["precision_in_use"].startswith("cpu: bfloat16" if fast else "cpu: float32")
