"""`build_services`: everything built from the settings, nothing shared between two apps in one process, and the
training worker started only when training is used."""
from __future__ import annotations

import time

import httpx
import pytest

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.jobs.job_store import JobStore


@pytest.fixture()
def two_apps(tmp_path, tiny_checkpoints):
    """Two complete apps (API only) in this process: different data folders, different checkpoints."""
    from webui.services import build_services

    first = build_services(make_settings(make_data_dir(tmp_path / "a", tiny_checkpoints, ("sd1",)), nowebui=True))
    second = build_services(make_settings(make_data_dir(tmp_path / "b", tiny_checkpoints, ("sd1-other",)),
                                          nowebui=True))
    with ServerThread(build_app(first), free_port()) as a, ServerThread(build_app(second), free_port()) as b:
        yield (first, a.url), (second, b.url)
    first.runtime.shutdown()
    second.runtime.shutdown()


def test_two_apps_with_different_settings_live_in_one_process(two_apps):
    (first, a), (second, b) = two_apps
    assert [row["title"] for row in httpx.get(f"{a}/sdapi/v1/sd-models").json()] == ["tiny-sd1.safetensors"]
    assert [row["title"] for row in httpx.get(f"{b}/sdapi/v1/sd-models").json()] == ["tiny-sd1-other.safetensors"]

    assert httpx.post(f"{a}/sdapi/v1/options", json={"samples_format": "jpg"}).status_code == 200
    assert httpx.get(f"{a}/sdapi/v1/options").json()["samples_format"] == "jpg"
    assert httpx.get(f"{b}/sdapi/v1/options").json()["samples_format"] == "png"
    assert (first.settings.paths.config_file.read_text().count("jpg") == 1
            and not second.settings.paths.config_file.exists())

    body = {"prompt": "a red circle", "steps": 1, "width": 32, "height": 32, "seed": 5, "save_images": True}
    infos = [httpx.post(f"{url}/sdapi/v1/txt2img", json=body, timeout=120).json()["info"] for url in (a, b)]
    assert '"sd_model_name": "tiny-sd1"' in infos[0] and '"sd_model_name": "tiny-sd1-other"' in infos[1]
    assert [p.suffix for p in (first.settings.paths.outputs_dir / "txt2img-images").rglob("*.*")] == [".jpg"]
    assert [p.suffix for p in (second.settings.paths.outputs_dir / "txt2img-images").rglob("*.*")] == [".png"]
    assert first.runtime.executor is not second.runtime.executor


def test_training_worker_starts_on_first_use_of_training(tmp_path):
    """A job the previous run left "running" is marked interrupted when training is first used, not at start,
    and until then no generation waits for it (the device arbiter sees no running training)."""
    from webui.services import build_services

    store = JobStore(tmp_path / "training" / "jobs.sqlite")
    store.create("left-over", {"output_name": "left-over"}, tmp_path / "training" / "jobs" / "x", job_id="x",
                 command=["python", "-c", "pass"])
    store.update("x", status="running", pid=None, started_at=time.time())
    services = build_services(make_settings(tmp_path))
    try:
        assert store.get("x").status == "running"
        assert services.training.running_jobs() == []
        assert [job.record.status for job in services.training.jobs()] == ["interrupted"]
    finally:
        services.runtime.shutdown()
