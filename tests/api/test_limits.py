"""Every size limit through the real app (Gradio UI + API in one server, tiny SD1 model): each oversized request
gets 422 with a readable `detail` (413 for an oversized body), decompression bombs are refused from their
header, a huge X/Y/Z plot is refused at once, and afterwards the server still generates normally."""
from __future__ import annotations

import base64
import json
import math
import select
import socket
import time

import httpx
import pytest
from gradio_client import Client
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, b64_png, free_port, make_data_dir, make_settings
from tests.ui.test_scripts_ui import txt2img_args, xyz
from webui.core.limits import LIMITS, MIB
from webui.testing.attack_run import bomb_png

BODY = {"prompt": "a red circle", "steps": 1, "width": 32, "height": 32, "seed": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("limits"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=True))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    with ServerThread(build_app(services), free_port()) as server:
        yield server
    services.runtime.executor.shutdown()


@pytest.fixture
def api(app_server):
    with httpx.Client(base_url=app_server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def bombs() -> dict[str, str]:
    """Over PIL's own limit (it raises on open) and over ours only (PIL would decode it)."""
    return {"huge": base64.b64encode(bomb_png(30000, 30000)).decode(),
            "over-limit": base64.b64encode(bomb_png(9000, 9000)).decode()}


def post(api: httpx.Client, path: str, body: dict) -> httpx.Response:
    """POST JSON as Python writes it: NaN and Infinity included (httpx refuses to send them)."""
    return api.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


def detail(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body["detail"], str), body
    return body["detail"]


# ----- generation ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("patch", "text"), [
    ({"width": 8192, "height": 8192}, "has more than 16,777,216 pixels"),
    ({"n_iter": 100, "batch_size": 64}, "makes 6400 images; one job makes at most 1000"),
    ({"steps": 10**6}, "Steps must be between 1 and 1000"),
    ({"enable_hr": True, "hr_scale": 4, "width": 2048, "height": 2048}, "hires fix size 8192x8192 has more than"),
    ({"enable_hr": True, "hr_resize_x": -64}, "Hires resize x must be 0 (off) or at most 8192"),
    ({"enable_hr": True, "hr_resize_x": 10**6, "hr_resize_y": 64}, "Hires resize x must be 0 (off) or at most"),
    ({"enable_hr": True, "hr_resize_x": 8192, "width": 32, "height": 4096}, "hires fix size 8192x1048576"),
    ({"enable_hr": True, "hr_scale": math.nan}, "Hires upscale must be between 1 and 8"),
    ({"enable_hr": True, "hr_second_pass_steps": 10**6}, "Hires steps must be between 0 and 1000"),
])
def test_generation_limits(api, patch, text):
    response = post(api, "/sdapi/v1/txt2img", {**BODY, **patch})
    assert response.status_code == 422, response.text
    assert text in detail(response)


def test_script_images_are_counted_before_anything_runs(api):
    prompt = "a circle|" + "|".join(f"part{i}" for i in range(10))  # 1024 combinations
    started = time.perf_counter()
    response = api.post("/sdapi/v1/txt2img", json={**BODY, "prompt": prompt, "n_iter": 4,
                                                   "script_name": "prompt matrix", "script_args": []})
    assert response.status_code == 422 and "makes 4096 images; a script run makes at most 4000" in detail(response)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(("x", "y", "z", "text"), [
    ("1-1000", "1-1000", "1-1000", "makes 1000000000 cells; a plot has at most 1000"),
    ("1-100000000", "", "", "an axis takes at most 1000"),
    ("1," * 40_000, "", "", "in at most 65,536 characters"),
    ("1-40", "1-30", "", "makes 1200 cells"),
])
def test_huge_xyz_plots_are_refused_promptly(api, x, y, z, text):
    args = ["Seed", x, [], "Steps" if y else "Nothing", y, [], "CFG Scale" if z else "Nothing", z, []]
    started = time.perf_counter()
    response = api.post("/sdapi/v1/txt2img", json={**BODY, "script_name": "x/y/z plot", "script_args": args})
    assert time.perf_counter() - started < 2
    assert response.status_code == 422 and text in detail(response)


def test_the_server_answers_while_a_plot_is_being_refused(app_server):
    """Refusing a plot never blocks the event loop: another request is answered meanwhile."""
    import threading

    args = ["Seed", "1-1000", [], "Steps", "1-1000", [], "CFG Scale", "1-1000", []]
    with httpx.Client(base_url=app_server.url, timeout=30) as client:
        thread = threading.Thread(target=client.post, args=("/sdapi/v1/txt2img",),
                                  kwargs={"json": {**BODY, "script_name": "x/y/z plot", "script_args": args}})
        thread.start()
        assert client.get("/sdapi/v1/samplers").status_code == 200
        thread.join(10)
        assert not thread.is_alive()


# ----- images sent in -----------------------------------------------------------------------------------------------

def _image_requests(data: str) -> list[tuple[str, dict]]:
    small = b64_png(Image.new("RGB", (32, 32), "red"))
    return [("/sdapi/v1/img2img", {**BODY, "init_images": [data]}),
            ("/sdapi/v1/img2img", {**BODY, "init_images": [small], "mask": data}),
            ("/sdapi/v1/extra-single-image", {"image": data, "upscaler_1": "Lanczos"}),
            ("/sdapi/v1/extra-batch-images", {"imageList": [{"data": small}, {"data": data}],
                                              "upscaler_1": "Lanczos"}),
            ("/sdapi/v1/png-info", {"image": data})]


@pytest.mark.parametrize("kind", ["huge", "over-limit"])
@pytest.mark.parametrize("index", range(5), ids=["init", "mask", "extras", "extras-batch", "png-info"])
def test_decompression_bombs_are_refused_from_their_header(api, bombs, kind, index):
    path, body = _image_requests(bombs[kind])[index]
    started = time.perf_counter()
    response = api.post(path, json=body)
    assert response.status_code == 422, response.text[:300]
    assert "67,108,864 pixels (8192x8192)" in detail(response)
    assert time.perf_counter() - started < 5  # refused from the header, not decoded


def test_too_many_images_sent_in(api):
    small = b64_png(Image.new("RGB", (8, 8), "red"))
    response = api.post("/sdapi/v1/img2img", json={**BODY, "init_images": [small] * 65})
    assert response.status_code == 422 and "65 input images were sent; at most 64" in detail(response)
    response = api.post("/sdapi/v1/extra-batch-images", json={"imageList": [{"data": small}] * 65})
    assert response.status_code == 422 and "65 images were sent; at most 64" in detail(response)


@pytest.mark.parametrize(("fields", "text"), [
    ({"upscaling_resize": math.nan}, "Upscale factor must be a number above 0 and at most 8 (got nan)"),
    ({"upscaling_resize": math.inf}, "Upscale factor must be a number above 0 and at most 8 (got inf)"),
    ({"upscaling_resize": -2}, "Upscale factor must be a number above 0 and at most 8 (got -2.0)"),
    ({"upscaling_resize": 1e9}, "at most 8"),
    ({"resize_mode": 1, "upscaling_resize_w": -1, "upscaling_resize_h": 64}, "outside 1-8192 pixels per side"),
    ({"resize_mode": 1, "upscaling_resize_w": 100_000, "upscaling_resize_h": 64}, "outside 1-8192 pixels"),
    ({"extras_upscaler_2_visibility": math.nan, "upscaler_2": "Nearest"}, "visibility must be between 0 and 1"),
])
def test_extras_scale_limits(api, fields, text):
    image = b64_png(Image.new("RGB", (16, 16), "blue"))
    for path, body in (("/sdapi/v1/extra-single-image", {"image": image}),
                       ("/sdapi/v1/extra-batch-images", {"imageList": [{"data": image}]})):
        response = post(api, path, {**body, "upscaler_1": "Lanczos", **fields})
        assert response.status_code == 422, response.text
        assert text in detail(response)


def test_extras_result_size_counts_the_crop_cover(api):
    """A thin image "scaled to" a square would be upscaled far past the target before the crop."""
    thin = b64_png(Image.new("RGB", (1, 512), "blue"))
    response = api.post("/sdapi/v1/extra-single-image", json={"image": thin, "upscaler_1": "Lanczos",
                                                              "resize_mode": 1, "upscaling_resize_w": 4096,
                                                              "upscaling_resize_h": 4096})
    assert response.status_code == 422 and "The upscaled image would be 4096x2097152" in detail(response)


# ----- request bodies and uploads -----------------------------------------------------------------------------------

def _connect(url: str) -> socket.socket:
    parsed = httpx.URL(url)
    sock = socket.create_connection((parsed.host, parsed.port), timeout=10)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return data


@pytest.mark.parametrize("path", ["/sdapi/v1/txt2img", "/gradio_api/upload"])
def test_a_declared_oversized_body_is_refused_unread(app_server, path):
    port = httpx.URL(app_server.url).port
    started = time.perf_counter()
    with _connect(app_server.url) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {1 << 30}\r\n\r\n".encode() + b"{" * 1024)
        answer = _read_response(sock)  # without sending the other GiB
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    headers, body = answer.split(b"\r\n\r\n", 1)
    assert b"x-content-type-options: nosniff" in headers.lower()
    assert b"larger than 64 MiB" in body
    assert time.perf_counter() - started < 5


def test_a_chunked_body_is_cut_off_at_the_limit(app_server):
    """No Content-Length: the server counts the chunks and answers 413 once they pass 64 MiB, long before the
    client has sent the 256 MiB it meant to."""
    port = httpx.URL(app_server.url).port
    chunk = b"x" * MIB
    sent = 0
    with _connect(app_server.url) as sock:
        sock.sendall(f"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
                     f"\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(256):
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < LIMITS.max_request_bytes + 32 * MIB  # stopped near the limit (socket buffers hold a few MiB)


def test_ui_uploads_are_capped(app_server):
    with httpx.Client(base_url=app_server.url, timeout=60) as client:
        small = client.post("/gradio_api/upload", files={"files": ("ok.png", b"\x89PNG small", "image/png")})
        assert small.status_code == 200
        big = client.post("/gradio_api/upload", files={"files": ("big.png", bytes(LIMITS.max_upload_bytes + 1),
                                                                  "image/png")})
    assert big.status_code == 413 and "maximum allowed size" in big.text


# ----- the UI -------------------------------------------------------------------------------------------------------

def test_the_ui_shows_readable_limit_messages(app_server):
    client = Client(app_server.url, verbose=False)
    fast = {"prompt_v": "a red circle", "sampler_v": "Euler", "steps_v": 1, "width_v": 64, "height_v": 64,
            "seed_v": 3}
    script = xyz(x=("Seed", "1-1000", []), y=("Steps", "1-1000", []), z=("CFG Scale", "1-1000", []))
    started = time.perf_counter()
    *_, message = client.predict(*txt2img_args(client, script, **fast), api_name="/txt2img")
    assert time.perf_counter() - started < 10
    assert "makes 1000000000 cells; a plot has at most 1000" in message
    hires = {**fast, "width_v": 2048, "height_v": 2048, "hr_enable_v": True, "hr_scale_v": 4}
    _gallery, _progress, _info, message = client.predict(*txt2img_args(client, ["None"], **hires),
                                                         api_name="/txt2img")
    assert "hires fix size 8192x8192 has more than 16,777,216 pixels" in message


def test_the_ui_refuses_a_bomb_in_an_extras_batch(app_server, tmp_path):
    from gradio_client import handle_file

    from tests.ui.test_img2img_ui import predict

    small, bomb = tmp_path / "small.png", tmp_path / "bomb.png"
    Image.new("RGB", (16, 16), "red").save(small)
    bomb.write_bytes(bomb_png(30000, 30000))
    client = Client(app_server.url, verbose=False)
    *_, message = predict(client, "/extras", source_v="Batch Process", image_v=None, input_dir_v="",
                          output_dir_v="", files_v=[handle_file(small), handle_file(bomb)], upscaler_1_v="Lanczos")
    assert "bomb.png' is too large to read" in message and "could be decompression bomb" in message
    Image.new("1", (9000, 9000)).save(bomb)  # over this server's limit only: refused from the header too
    *_, message = predict(client, "/extras", source_v="Batch Process", image_v=None, input_dir_v="",
                          output_dir_v="", files_v=[handle_file(small), handle_file(bomb)], upscaler_1_v="Lanczos")
    assert "Image #2 is 9000x9000; images of at most 67,108,864 pixels (8192x8192) are accepted." in message


# ----- and afterwards -----------------------------------------------------------------------------------------------

def test_after_all_that_the_server_still_generates(api):
    response = api.post("/sdapi/v1/txt2img", json=BODY)
    assert response.status_code == 200
    assert len(response.json()["images"]) == 1
