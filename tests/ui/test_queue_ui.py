"""The queue through the real app (UI and API on one server, tiny SD1 model): three API clients and two UI
sessions generating at once each get their own images; the Queue tab lists, reorders, cancels and pauses tasks;
"Generate forever" queues again and again until it is switched off."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from tests.ui.test_gradio_ui import txt2img_args
from webui.engine.output.png import read_infotext

BODY = {"steps": 2, "width": 64, "height": 64, "cfg_scale": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("queue-ui"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=True))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url
    services.runtime.executor.shutdown()


def txt2img_call(client: Client, **overrides) -> tuple[list, dict]:
    """The txt2img endpoint's positional arguments, with None for any later input that has no default (an image
    input of another section), so the call does not depend on what other sections the tab shows."""
    args = txt2img_args(**overrides)
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/txt2img"]["parameters"]
    extra = {param["parameter_name"]: None for param in params[len(args):] if not param["parameter_has_default"]}
    return args, extra


def run_all(jobs: dict[str, callable]) -> dict:
    """Start every job at once in its own thread; their results (or exceptions) by name."""
    results: dict = {}

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[name] = exc

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return results


@pytest.mark.slow
def test_three_api_clients_and_two_ui_sessions_at_once_each_get_their_own_images(app_server):
    services, url = app_server
    ui_clients = [Client(url, verbose=False) for _ in range(2)]

    def api_call(n: int):
        body = {**BODY, "prompt": f"api client {n}", "seed": 100 + n, "batch_size": 2}
        return httpx.post(f"{url}/sdapi/v1/txt2img", json=body, timeout=300).json()

    def ui_call(n: int):
        args, extra = txt2img_call(ui_clients[n], prompt_v=f"ui session {n}", seed_v=200 + n, size_v=2)
        return ui_clients[n].predict(*args, **extra, api_name="/txt2img")

    jobs = {**{f"api{n}": (lambda n=n: api_call(n)) for n in range(3)},
            **{f"ui{n}": (lambda n=n: ui_call(n)) for n in range(2)}}
    results = run_all(jobs)
    for n in range(3):
        answer = results[f"api{n}"]
        info = json.loads(answer["info"])
        assert info["prompt"] == f"api client {n}" and info["all_seeds"] == [100 + n, 101 + n]
        texts = [Image.open(io.BytesIO(base64.b64decode(data))).info["parameters"] for data in answer["images"]]
        assert all(text.startswith(f"api client {n}\n") for text in texts)
        assert [f"Seed: {seed}," in text for text, seed in zip(texts, (100 + n, 101 + n), strict=True)] == [True] * 2
    for n in range(2):
        assert not isinstance(results[f"ui{n}"], Exception), results[f"ui{n}"]
        gallery, _, info, message = results[f"ui{n}"]
        assert message == "" and f"ui session {n}" in info and f"Seed: {200 + n}" in info
        assert [item["caption"] for item in gallery] == [f"Seed {200 + n}", f"Seed {201 + n}"]
        for item in gallery:
            assert read_infotext(Image.open(item["image"])).startswith(f"ui session {n}\n")
    views = {view.summary: view for view in services.tasks.tasks()}
    mine = [view for summary, view in views.items() if "api client" in summary or "ui session" in summary]
    assert len(mine) == 5 and all(view.state == "done" and len(view.images) == 2 for view in mine)
    assert {view.source for view in mine} == {"api", "ui"}


def test_the_queue_tab_lists_reorders_cancels_and_pauses(app_server):
    services, url = app_server
    client = Client(url, verbose=False)
    status, *_ = client.predict(None, api_name="/queue_pause_all")
    assert "paused" in status
    ids = [httpx.post(f"{url}/sdapi/v1/queue/txt2img", json={**BODY, "prompt": f"panel {n}", "seed": n}).json()["id"]
           for n in range(3)]
    status, table, training, task, message = client.predict(None, api_name="/queue_refresh")
    assert all(f"panel {n}" in table for n in range(3)) and "The queue is paused" in status
    assert client.predict(ids[2], api_name="/queue_up")[4] == "Moved up."
    assert client.predict(ids[0], api_name="/queue_cancel")[4] == "Cancelled."
    assert client.predict(ids[1], api_name="/queue_pause")[4].startswith("Paused")
    queued = [view.id for view in services.tasks.tasks() if view.state in ("queued", "paused")]
    assert queued == [ids[2], ids[1]]
    client.predict(None, api_name="/queue_resume_all")
    client.predict(ids[1], api_name="/queue_resume")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and services.tasks.task(ids[1]).state != "done":
        time.sleep(0.2)
    first, second = services.tasks.task(ids[2]), services.tasks.task(ids[1])
    assert first.state == second.state == "done" and first.started_at < second.started_at
    _, table, *_ = client.predict(None, api_name="/queue_refresh")
    assert "cancelled" in table and table.count('<img src="data:image/png;base64,') >= 2
    assert client.predict(None, api_name="/queue_cancel")[4] == "Choose a pending task first."


def test_generate_forever_queues_again_until_it_is_switched_off(app_server):
    services, url = app_server
    client = Client(url, verbose=False)
    client.predict(True, api_name="/txt2img_generate_forever")
    args, extra = txt2img_call(client, prompt_v="forever and ever", seed_v=-1, size_v=1)
    job = client.submit(*args, **extra, api_name="/txt2img")

    def done_count() -> int:
        return sum(1 for view in services.tasks.tasks() if "forever and ever" in view.summary and view.state == "done")

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and done_count() < 3:
        time.sleep(0.2)
    assert done_count() >= 3
    client.predict(False, api_name="/txt2img_generate_forever")
    gallery, *_ = job.result(timeout=120)
    made = done_count()
    time.sleep(1.0)
    assert done_count() == made  # stopped
    seeds = {view.summary for view in services.tasks.tasks() if "forever and ever" in view.summary}
    assert len(seeds) == made  # each round drew its own seed
    assert len(gallery) == 1


def test_the_extras_tab_queues_a_task(app_server, tmp_path):
    services, url = app_server
    source = tmp_path / "small.png"
    Image.new("RGB", (16, 16), (10, 200, 30)).save(source)
    client = Client(url, verbose=False)
    gallery, _, info, message = client.predict(
        "Single Image", handle_file(str(source)), None, "", "", "Scale by", 2, 512, 512, True, "Nearest", "None", 0,
        api_name="/extras")
    assert message == "" and len(gallery) == 1
    assert Image.open(gallery[0]["image"]).size == (32, 32)
    extras = [view for view in services.tasks.tasks() if view.kind == "extras" and view.source == "ui"]
    assert extras and extras[0].state == "done" and len(extras[0].images) == 1
