"""Defaults that fit the model, through gradio_client against the real app: choosing a checkpoint of another family
sets txt2img's and img2img's width/height to its native size (after the load, `model_defaults`), unless the user
changed that tab's size in this session; the demo model opens at 64x64; the device note; the hires hint."""
from __future__ import annotations

import pytest
from gradio_client import Client

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("defaults-ui"), tiny_checkpoints, ("sd1", "sdxl"))
    services = build_services(make_settings(data_dir, api=False, include_demo_model=True))
    services.models.select_checkpoint("demo-shapes.safetensors")
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url
    services.runtime.executor.shutdown()


def select(client: Client, title: str) -> list:
    """What the browser does: "select_checkpoint", then its `.then` "model_defaults" (sizes of both tabs)."""
    loaded, message, _ = client.predict(title, api_name="/select_checkpoint")
    assert loaded == title, message
    return client.predict(api_name="/model_defaults")


def value(update) -> object:
    return update.get("value") if isinstance(update, dict) else update


@pytest.mark.slow
def test_sizes_follow_the_checkpoint_unless_the_user_changed_them(ui, tiny_checkpoints):
    services, url = ui
    client = Client(url, verbose=False)
    note, t_w, t_h, hires, i_w, i_h = select(client, tiny_checkpoints["sdxl"].name)
    assert [value(v) for v in (t_w, t_h, i_w, i_h)] == [1024] * 4
    assert note.startswith("Running on CPU (") and "1024x1024" in note
    assert "2048x2048" in str(hires)  # the hires hint: 2x the native size
    note, t_w, t_h, _, i_w, i_h = select(client, "demo-shapes.safetensors")
    assert [value(v) for v in (t_w, t_h, i_w, i_h)] == [64] * 4 and "64x64" in note

    client.predict(api_name="/txt2img_width_set_by_user")  # the user moves txt2img's width slider
    _, t_w, t_h, _, i_w, i_h = select(client, tiny_checkpoints["sdxl"].name)
    assert value(t_w) is None and value(t_h) is None  # txt2img keeps what the user chose
    assert value(i_w) == value(i_h) == 1024  # img2img, untouched, follows the model

    fresh = Client(url, verbose=False)  # another browser session starts from the model again
    _, t_w, _, _, _, _ = select(fresh, tiny_checkpoints["sd1"].name)
    assert value(t_w) == 512
    services.models.select_checkpoint("demo-shapes.safetensors")


def test_demo_note_names_the_size(ui):
    from webui.ui.components import DEMO_NOTE

    assert "**64x64**" in DEMO_NOTE and "\U0001f504" not in DEMO_NOTE  # no emoji: ↻ renders without an emoji font
