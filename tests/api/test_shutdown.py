"""A server that stops when asked: SIGTERM during a long generation (with a browser tab's heartbeat stream open)
ends the process within seconds, and the image the interrupted job finished is written whole.

The real launcher in a subprocess (`launch.py --skip-install`), with a tiny checkpoint on the CPU."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import free_port, make_data_dir

ROOT = Path(__file__).resolve().parents[2]
EXIT_WITHIN_SECONDS = 4  # under the 5 s uvicorn would wait for a browser tab's open stream


def wait_until_up(process: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited during start-up"
        try:
            if httpx.get(f"{url}/sdapi/v1/samplers", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not start")


def wait_for_sampling(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/sdapi/v1/progress", timeout=5).json()["state"]
        if state["sampling_step"] >= 2:
            return
        time.sleep(0.05)
    raise AssertionError("the generation did not start")


def in_background(fn) -> dict:
    """Run `fn` in a daemon thread; its result or exception lands in the returned dict."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()
    return box


@pytest.fixture
def server_process(tmp_path, tiny_checkpoints):
    data_dir = make_data_dir(tmp_path / "data", tiny_checkpoints, ("sd1",))
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "launch.py", "--skip-install", "--data-dir", str(data_dir), "--api", "--port", str(port),
         "--use-cpu", "all", "--no-demo-model", "--threads", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}", data_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def test_sigterm_during_a_long_generation_stops_promptly(server_process):
    process, url, data_dir = server_process
    wait_until_up(process, url)
    # A browser tab: Gradio's heartbeat stream stays open as long as the tab does.
    tab = in_background(lambda: httpx.get(f"{url}/gradio_api/heartbeat/{uuid.uuid4().hex}", timeout=120).status_code)
    long_job = {"prompt": "a long one", "steps": 150, "width": 64, "height": 64, "n_iter": 100, "seed": 5,
                "save_images": True}
    generation = in_background(lambda: httpx.post(f"{url}/sdapi/v1/txt2img", json=long_job, timeout=300))
    wait_for_sampling(url)

    asked = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(EXIT_WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server was still running {EXIT_WITHIN_SECONDS} s after SIGTERM")
    took = time.monotonic() - asked

    generation["thread"].join(5)
    tab["thread"].join(5)
    response = generation.get("result")
    assert response is not None and response.status_code == 200, generation
    assert 1 <= len(response.json()["images"]) < 100  # the interrupted batch's image, not all 100
    saved = sorted((data_dir / "outputs" / "txt2img-images").rglob("*.png"))
    assert saved, "the finished image was not written"
    with Image.open(saved[-1]) as image:
        image.load()  # complete, not cut off by the exit
        assert image.size == (64, 64)
    print(f"exited {took:.2f} s after SIGTERM")  # noqa: T201
