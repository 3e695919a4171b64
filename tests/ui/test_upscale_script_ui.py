"""Ultimate SD upscale from the img2img tab (gradio_client) and from `/sdapi/v1/img2img` with `script_name`, against
the real app with the tiny SD1 model."""
from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.engine.output.png import read_infotext

FAST = {"prompt_v": "a red circle", "sampler_v": "Euler", "steps_v": 1, "width_v": 64, "height_v": 64, "cfg_v": 5,
        "seed_v": 9, "count_v": 1, "size_v": 1, "denoise_v": 0.3, "mode_v": "img2img"}
# The script's widgets after "Script": X/Y/Z (9 axis values + 8 options) and Prompt matrix (5) come first.
UPSCALE_OFFSET = 1 + 9 + 8 + 5


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("usdu-ui"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=True))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url
    services.runtime.executor.shutdown()


def picture(path, width: int = 40, height: int = 32) -> str:
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(path)
    return str(path)


def upscale_values(**changes) -> list:
    """The 17 widget values in A1111's order (tile width ... scale), small and fast."""
    values = {"tile_width": 32, "tile_height": 0, "mask_blur": 4, "padding": 8, "seams_fix_width": 16,
              "seams_fix_denoise": 0.3, "seams_fix_padding": 8, "upscaler": "Lanczos", "save_upscaled": True,
              "redraw": "Chess", "save_seams": False, "seams_blur": 4, "seams": "None",
              "size_type": "Scale from image size", "width": 2048, "height": 2048, "scale": 2}
    values.update(changes)
    return list(values.values())


def img2img_args(client: Client, script: list, **fields) -> list:
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/img2img"]["parameters"]
    values = [{**FAST, **fields}.get(p["parameter_name"], p.get("parameter_default")) for p in params]
    start = [p["label"] for p in params].index("Script")
    values[start] = script[0]
    values[start + UPSCALE_OFFSET:start + UPSCALE_OFFSET + len(script) - 1] = script[1:]
    return values


def test_ultimate_upscale_from_the_img2img_tab(app, tmp_path):
    services, url = app
    client = Client(url, verbose=False)
    upscalers = client.predict("Ultimate SD upscale", api_name="/img2img_script_select")  # (groups carry no data)
    assert "Lanczos" in [choice[0] for choice in upscalers["choices"]]
    args = img2img_args(client, ["Ultimate SD upscale", *upscale_values()], init_v=handle_file(picture(
        tmp_path / "in.png")))
    gallery, _progress, info, message = client.predict(*args, api_name="/img2img")
    assert message == ""
    assert len(gallery) == 1
    image = Image.open(gallery[0]["image"])
    assert image.size == (80, 64)
    assert "Ultimate SD upscale upscaler: Lanczos" in info and "Denoising strength: 0.3" in info
    saved = read_infotext(image)
    assert saved is not None and "Size: 80x64" in saved and "Ultimate SD upscale tile_width: 32" in saved
    assert list((services.settings.paths.outputs_dir / "img2img-images").rglob("*.png"))
    bad = img2img_args(client, ["Ultimate SD upscale", *upscale_values(tile_width=0, tile_height=0)],
                       init_v=handle_file(picture(tmp_path / "in.png")))
    assert "Tile width and height must be at least 8" in client.predict(*bad, api_name="/img2img")[-1]


def encode(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_ultimate_upscale_through_the_api(app, tmp_path):
    _, url = app
    source = Image.open(picture(tmp_path / "in.png", 32, 32))
    # A1111's order: info, tile w/h, mask blur, padding, seams fix width/denoise/padding, upscaler (index: Lanczos),
    # save upscaled, redraw mode (index: Linear), save seams fix, seams fix mask blur, seams fix type (Band pass),
    # target size type (index 1: custom size), custom width/height, scale.
    args = ["", 32, 32, 4, 8, 16, 0.3, 8, 1, True, 0, True, 4, "Band pass", 1, 80, 64, 2]
    body = {"prompt": "a red circle", "steps": 1, "seed": 4, "cfg_scale": 5, "sampler_name": "Euler",
            "denoising_strength": 0.3, "init_images": [encode(source)], "script_name": "Ultimate SD upscale",
            "script_args": args}
    with httpx.Client(base_url=url, timeout=300) as api:
        response = api.post("/sdapi/v1/img2img", json=body)
        assert response.status_code == 200, response.text
        images = [Image.open(io.BytesIO(base64.b64decode(data))) for data in response.json()["images"]]
        assert [image.size for image in images] == [(80, 64), (80, 64)]  # upscaled, then seams fixed
        infotext = json.loads(response.json()["info"])["infotexts"][1]
        assert "Ultimate SD upscale seams_fix_type: Band pass" in infotext and "Size: 80x64" in infotext
        assert "ultimate sd upscale" in api.get("/sdapi/v1/scripts").json()["img2img"]
        info = next(s for s in api.get("/sdapi/v1/script-info").json() if s["name"] == "ultimate sd upscale")
        assert [arg["label"] for arg in info["args"]][:3] == ["info", "Tile width", "Tile height"]
        assert info["args"][8]["choices"][:3] == ["None", "Lanczos", "Nearest"]
        bad = api.post("/sdapi/v1/img2img", json={**body, "script_args": ["", 32, 32, 4, 8, 16, 0.3, 8, 42]})
        assert bad.status_code == 422 and "upscaler index 42 is out of range" in bad.text
        plain = api.post("/sdapi/v1/txt2img", json={**body, "width": 32, "height": 32})
        assert plain.status_code == 422 and "needs an input image" in plain.text
