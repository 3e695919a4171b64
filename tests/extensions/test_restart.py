""""Apply and restart UI": the choice is saved and the server process starts again with it.

The real launcher in a subprocess (tiny SD1 on the CPU, the sample extension in `extensions/`): a restart asked
for while a task samples lets that task finish, keeps the task queued behind it for the new process, and the new
process has the extension off. In-process apps (no launcher) only save, and say so; a running training job
blocks the restart."""
from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest
from gradio_client import Client

from tests.api.test_queue_restart import SMALL, start_server, stop_server, wait_state
from tests.api.test_shutdown import wait_until_up
from tests.conftest import free_port, make_data_dir
from tests.extensions.conftest import SAMPLES
from webui.core.errors import ValidationError
from webui.jobs.executor import GpuExecutor
from webui.services.server_restart import MANUAL_NOTE, RESTART_MARK, ServerRestart


def test_a_restart_waits_for_the_running_job_and_cancels_nothing_it_ran():
    executor = GpuExecutor()
    release, stopped = threading.Event(), threading.Event()
    running = executor.submit(lambda token, progress: (release.wait(30), token.interrupted)[1])
    while not executor.busy:
        time.sleep(0.01)
    queued = executor.submit(lambda token, progress: "ran")
    restart = ServerRestart(executor, lambda: [])
    assert restart.request() == MANUAL_NOTE and not restart.requested.is_set()  # nothing attached: save only
    restart.attach(stopped.set)
    assert RESTART_MARK in restart.request()
    assert not stopped.wait(0.5)  # the running job is not interrupted ...
    release.set()
    assert stopped.wait(10) and running.result(5) is False  # ... it finishes, then the server stops
    assert queued.cancelled()  # a job queued behind it does not start in this process
    executor.shutdown()


def test_a_running_training_job_blocks_the_restart():
    executor = GpuExecutor()
    restart = ServerRestart(executor, lambda: ["a job"])
    restart.attach(lambda: None)
    with pytest.raises(ValidationError, match="training job is running"):
        restart.request()
    assert not restart.requested.is_set()
    executor.shutdown()


@pytest.mark.slow
def test_apply_and_restart_ui_restarts_the_launcher_with_the_new_choice(tmp_path, tiny_checkpoints):
    data_dir = make_data_dir(tmp_path / "data", tiny_checkpoints, ("sd1",))
    shutil.copytree(SAMPLES / "sample-ext", data_dir / "extensions" / "sample-ext")
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, log, ui=True)
    try:
        wait_until_up(server, url)
        assert httpx.get(f"{url}/ext/sample-ext/status", timeout=30).status_code == 200
        client = Client(url, verbose=False)
        names = [e["name"] for e in httpx.get(f"{url}/sdapi/v1/extensions", timeout=30).json()]
        slow = httpx.post(f"{url}/sdapi/v1/queue/txt2img",
                          json={**SMALL, "prompt": "slow", "steps": 40, "n_iter": 4, "seed": 2}).json()
        behind = httpx.post(f"{url}/sdapi/v1/queue/txt2img", json={**SMALL, "prompt": "behind", "seed": 3}).json()
        wait_state(url, slow["id"], ("running",))
        *_, note = client.predict([n for n in names if n != "sample-ext"], api_name="/extensions_apply")
        assert RESTART_MARK in note
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # down, then up again in the same process (exec keeps the pid)
            try:
                httpx.get(f"{url}/sdapi/v1/samplers", timeout=2)
            except httpx.HTTPError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the server did not stop for the restart")
        wait_until_up(server, url)
        listed = {e["name"]: e["enabled"] for e in httpx.get(f"{url}/sdapi/v1/extensions", timeout=30).json()}
        assert listed["sample-ext"] is False
        assert httpx.get(f"{url}/ext/sample-ext/status", timeout=30).status_code == 404
        finished = wait_state(url, slow["id"], ("done", "failed", "cancelled"))
        assert finished["state"] == "done" and len(finished["images"]) == 4  # not interrupted by the restart
        assert wait_state(url, behind["id"], ("done", "failed"))["state"] == "done"  # ran in the new process
        assert "Restarting the server" in log.read_text(encoding="utf-8")
    finally:
        stop_server(server)
