"""A crash in the middle of a task: the real launcher in a subprocess (tiny SD1 on the CPU), kill -9 while a long
task samples, then a new process on the same data folder. The task that was running is failed (never done), the
task queued behind it runs, and the task finished before the crash is still listed with its images on disk."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.api.test_shutdown import wait_until_up
from tests.conftest import free_port, make_data_dir

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"steps": 2, "width": 64, "height": 64, "cfg_scale": 5, "sampler_name": "Euler"}


def start_server(data_dir: Path, port: int, log: Path, ui: bool = False) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.Popen(
        [sys.executable, "launch.py", "--skip-install", "--data-dir", str(data_dir), "--api",
         *(() if ui else ("--nowebui",)), "--port", str(port), "--use-cpu", "all", "--no-demo-model",
         "--threads", "1"],
        cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT)


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM, then a kill if it is not gone within 20 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()


def wait_state(url: str, task_id: str, states: tuple[str, ...], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/sdapi/v1/queue/{task_id}", timeout=30).json()
        if answer["state"] in states:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} never reached {states}")


@pytest.mark.slow
def test_kill_9_during_a_task_then_restart(tmp_path, tiny_checkpoints):
    data_dir = make_data_dir(tmp_path / "data", tiny_checkpoints, ("sd1",))
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, log)
    try:
        wait_until_up(server, url)
        finished = httpx.post(f"{url}/sdapi/v1/queue/txt2img", json={**SMALL, "prompt": "before", "seed": 1}).json()
        before = wait_state(url, finished["id"], ("done", "failed"))
        assert before["state"] == "done"
        slow = httpx.post(f"{url}/sdapi/v1/queue/txt2img",
                          json={**SMALL, "prompt": "slow", "steps": 150, "n_iter": 100, "seed": 2}).json()
        behind = httpx.post(f"{url}/sdapi/v1/queue/txt2img", json={**SMALL, "prompt": "behind", "seed": 3}).json()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            progress = httpx.get(f"{url}/sdapi/v1/progress", timeout=30).json()
            if progress["task_id"] == slow["id"] and progress["state"]["sampling_step"] >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the slow task did not start sampling")
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
    server = start_server(data_dir, port, log)
    try:
        wait_until_up(server, url)
        crashed = httpx.get(f"{url}/sdapi/v1/queue/{slow['id']}", timeout=30).json()
        assert crashed["state"] == "failed" and "stopped while this task ran" in crashed["error"]
        assert crashed["images"] == []
        after = wait_state(url, behind["id"], ("done", "failed"))
        assert after["state"] == "done" and json.loads(after["info"])["prompt"] == "behind"
        kept = httpx.get(f"{url}/sdapi/v1/queue/{finished['id']}", timeout=30).json()
        assert kept["state"] == "done" and json.loads(kept["info"])["all_seeds"] == [1]
        assert [base64.b64decode(item) for item in kept["images"]] == [base64.b64decode(i) for i in before["images"]]
        on_disk = sorted((data_dir / "queue" / finished["id"]).glob("result-*.png"))
        assert len(on_disk) == 1 and Image.open(on_disk[0]).size == (64, 64)
        Image.open(io.BytesIO(base64.b64decode(kept["images"][0]))).load()
        listed = {task["id"]: task["state"] for task in httpx.get(f"{url}/sdapi/v1/queue", timeout=30).json()["tasks"]}
        assert listed == {finished["id"]: "done", slow["id"]: "failed", behind["id"]: "done"}
    finally:
        stop_server(server)
