"""The real app started on a corrupt config.json: the Settings tab says so, the original is kept as a `.bad`
copy, and settings (UI and API) work and save a fresh file."""
from __future__ import annotations

import json

import httpx
import pytest
from gradio_client import Client

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.ui.tabs.settings import SETTING_KEYS

CORRUPT = b'{"samples_format": "jpg", "outdir_txt2img_samples": "my-out",\n'  # cut short by a crash


@pytest.fixture(scope="module")
def app_on_corrupt_config(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("corrupt-config"), tiny_checkpoints, ("sd1",))
    (data_dir / "config.json").write_bytes(CORRUPT)
    services = build_services(make_settings(data_dir))
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url
    services.runtime.executor.shutdown()


def component(config: dict, elem_id: str) -> dict:
    return next(c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_the_settings_tab_warns_and_the_original_is_kept(app_on_corrupt_config):
    services, url = app_on_corrupt_config
    data_dir = services.settings.paths.data_dir
    assert (data_dir / "config.json.bad").read_bytes() == CORRUPT
    config = httpx.get(f"{url}/config", timeout=60).json()
    warning = component(config, "settings_warning")
    assert warning["visible"] is True
    assert "config.json" in warning["value"] and "config.json.bad" in warning["value"]


def test_settings_still_apply_and_save_a_fresh_file(app_on_corrupt_config):
    services, url = app_on_corrupt_config
    data_dir = services.settings.paths.data_dir
    response = httpx.post(f"{url}/sdapi/v1/options", json={"samples_format": "webp"}, timeout=60)
    assert response.status_code == 200, response.text
    assert json.loads((data_dir / "config.json").read_text())["samples_format"] == "webp"
    client = Client(url, verbose=False)
    values = {key: services.options.get(key) for key in SETTING_KEYS}
    result = client.predict(**{**values, "samples_format": "png"}, api_name="/apply_settings")
    assert "samples_format" in result[0]
    assert json.loads((data_dir / "config.json").read_text())["samples_format"] == "png"
    assert (data_dir / "config.json.bad").read_bytes() == CORRUPT
