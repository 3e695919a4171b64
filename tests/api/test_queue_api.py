"""The queue routes over real HTTP with the tiny SD1 model (API served alone): `POST /sdapi/v1/queue/*` answer an
id at once, `GET /sdapi/v1/queue/{id}` answers the synchronous route's images and info once done, the list, the
server-sent progress events, cancel by DELETE, pause/reorder, and `/progress` naming the running task."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import pytest
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, b64_png, free_port, make_data_dir, make_settings

BODY = {"prompt": "a red circle", "steps": 2, "width": 32, "height": 32, "seed": 11, "cfg_scale": 5,
        "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("queue-api"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=True, nowebui=True))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    with ServerThread(build_app(services), free_port()) as running:
        yield running
    services.runtime.executor.shutdown()


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
        client.post("/sdapi/v1/queue/resume")


def wait_done(api: httpx.Client, task_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api.get(f"/sdapi/v1/queue/{task_id}").json()
        if answer["state"] in ("done", "failed", "cancelled"):
            return answer
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


def pixels(data: str) -> tuple[bytes, str]:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    return image.tobytes(), image.info.get("parameters", "")


def test_a_queued_txt2img_answers_like_the_synchronous_route(api):
    queued = api.post("/sdapi/v1/queue/txt2img", json=BODY)
    assert queued.status_code == 200 and set(queued.json()) == {"id"}
    answer = wait_done(api, queued.json()["id"])
    assert answer["state"] == "done" and answer["progress"] == 1.0
    assert {"id", "state", "progress", "images", "info"} <= set(answer)
    sync = api.post("/sdapi/v1/txt2img", json=BODY).json()
    assert [pixels(item) for item in answer["images"]] == [pixels(item) for item in sync["images"]]
    queued_info, sync_info = json.loads(answer["info"]), json.loads(sync["info"])
    assert queued_info["all_seeds"] == sync_info["all_seeds"] == [11]
    assert queued_info["infotexts"] == sync_info["infotexts"]
    listed = api.get("/sdapi/v1/queue").json()
    ids = [task["id"] for task in listed["tasks"]]
    assert queued.json()["id"] in ids and listed["queue_paused"] is False and listed["waits_for"]
    assert len(ids) >= 2  # the synchronous call was a task too


def test_img2img_and_extras_queue_with_the_same_bodies(api):
    init = Image.new("RGB", (32, 32), (0, 90, 200))
    task = api.post("/sdapi/v1/queue/img2img", json={**BODY, "init_images": [b64_png(init)],
                                                      "denoising_strength": 0.5}).json()
    extras = api.post("/sdapi/v1/queue/extra-single-image",
                      json={"image": b64_png(init), "upscaling_resize": 2, "upscaler_1": "Nearest"}).json()
    answer = wait_done(api, task["id"])
    assert answer["state"] == "done" and json.loads(answer["info"])["denoising_strength"] == 0.5
    assert Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))).size == (32, 32)
    upscaled = wait_done(api, extras["id"])
    assert upscaled["state"] == "done" and upscaled["kind"] == "extras"
    assert Image.open(io.BytesIO(base64.b64decode(upscaled["images"][0]))).size == (64, 64)
    assert upscaled["info"]


def test_bad_bodies_are_refused_before_anything_is_queued(api):
    before = len(api.get("/sdapi/v1/queue").json()["tasks"])
    assert api.post("/sdapi/v1/queue/txt2img", json={**BODY, "width": 33}).status_code == 422
    assert api.post("/sdapi/v1/queue/extra-single-image", json={"image": "nope"}).status_code == 422
    assert len(api.get("/sdapi/v1/queue").json()["tasks"]) == before
    assert api.get("/sdapi/v1/queue/no-such-task").status_code == 404
    assert api.delete("/sdapi/v1/queue/no-such-task").status_code == 404


def test_delete_cancels_a_queued_task_and_pause_and_reorder_change_the_order(api):
    assert api.post("/sdapi/v1/queue/pause").json() == {"queue_paused": True}
    ids = [api.post("/sdapi/v1/queue/txt2img", json={**BODY, "prompt": f"task {n}", "seed": n}).json()["id"]
           for n in range(3)]
    assert api.delete(f"/sdapi/v1/queue/{ids[0]}").json() == {"id": ids[0], "state": "cancelled"}
    assert api.post(f"/sdapi/v1/queue/{ids[2]}/up").json()["state"] == "queued"
    assert api.post(f"/sdapi/v1/queue/{ids[1]}/pause").json()["state"] == "paused"
    time.sleep(0.3)
    assert api.get(f"/sdapi/v1/queue/{ids[2]}").json()["state"] == "queued"  # the queue is paused
    api.post("/sdapi/v1/queue/resume")
    assert wait_done(api, ids[2])["state"] == "done"
    assert api.get(f"/sdapi/v1/queue/{ids[1]}").json()["state"] == "paused"
    api.post(f"/sdapi/v1/queue/{ids[1]}/resume")
    second = wait_done(api, ids[1])
    assert second["state"] == "done" and json.loads(second["info"])["prompt"] == "task 1"
    cancelled = api.get(f"/sdapi/v1/queue/{ids[0]}").json()
    assert cancelled["state"] == "cancelled" and cancelled["images"] == []
    assert api.delete(f"/sdapi/v1/queue/{ids[2]}").status_code == 409  # finished: nothing to cancel


def test_progress_streams_as_server_sent_events_and_names_the_running_task(api, server):
    task_id = api.post("/sdapi/v1/queue/txt2img", json={**BODY, "steps": 40, "n_iter": 2}).json()["id"]
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not seen:
        progress = api.get("/sdapi/v1/progress").json()
        if progress["task_id"] is not None:
            seen.append(progress["task_id"])
            assert progress["current_task"] == progress["task_id"] and "state" in progress
    assert seen == [task_id]
    events = []
    with httpx.Client(base_url=server.url, timeout=120) as streaming:
        with streaming.stream("GET", f"/sdapi/v1/queue/{task_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[len("data: "):])))
    assert events[-1][0] == "done" and events[-1][1]["state"] == "done" and events[-1][1]["id"] == task_id
    assert all(name == "progress" for name, _ in events[:-1])
    assert any(0 < data["progress"] < 1 for _, data in events[:-1])
    assert api.get("/sdapi/v1/progress").json()["task_id"] is None


def test_interrupt_ends_the_running_task_and_it_keeps_its_images(api):
    task_id = api.post("/sdapi/v1/queue/txt2img", json={**BODY, "steps": 40, "n_iter": 50}).json()["id"]
    while api.get(f"/sdapi/v1/queue/{task_id}").json()["state"] != "running":
        time.sleep(0.05)
    threading.Event().wait(0.5)
    assert api.delete(f"/sdapi/v1/queue/{task_id}").json()["id"] == task_id
    answer = wait_done(api, task_id)
    assert answer["state"] == "cancelled" and 0 < len(answer["images"]) < 50
    assert json.loads(answer["info"])["interrupted"] is True
