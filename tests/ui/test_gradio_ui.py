"""The real Gradio app, in-process, driven through gradio_client like a browser would."""
from __future__ import annotations

import shutil

import pytest
from gradio_client import Client
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.engine.output.png import read_infotext


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("ui-data"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


def txt2img_args(**overrides):
    args = {"prompt_v": "a red circle", "negative_v": "", "sampler_v": "Euler a", "schedule_v": "Automatic",
            "steps_v": 2, "width_v": 64, "height_v": 64, "cfg_v": 5, "seed_v": 321, "count_v": 1, "size_v": 2,
            "clip_skip_v": 1}
    args.update(overrides)
    return list(args.values())


def test_startup_loads_the_first_checkpoint(ui):
    services, _ = ui
    assert services.models.current_checkpoint() == "tiny-sd1.safetensors"


def test_generate_shows_saved_images_and_infotext(ui):
    services, client = ui
    gallery, progress, info, message = client.predict(*txt2img_args(), api_name="/txt2img")
    assert message == ""
    assert [item["caption"] for item in gallery] == ["Seed 321", "Seed 322"]
    assert "Seed: 321" in info and "Steps: 2" in info
    saved = sorted((services.settings.paths.outputs_dir / "txt2img-images").rglob("*.png"))
    assert [p.name.split("-", 1)[1] for p in saved[-2:]] == ["321.png", "322.png"]
    # What the browser receives is the saved file itself, infotext included.
    shown = read_infotext(Image.open(gallery[1]["image"]))
    assert shown is not None and "Seed: 322" in shown


def test_bad_input_shows_a_message_and_the_server_keeps_serving(ui):
    _, client = ui
    *_, message = client.predict(*txt2img_args(width_v=68), api_name="/txt2img")
    assert "divisible by 8" in message
    *_, message = client.predict(*txt2img_args(sampler_v="DDIM", schedule_v="Karras"), api_name="/txt2img")
    assert "not available with sampler 'DDIM'" in message
    gallery, *_ = client.predict(*txt2img_args(size_v=1), api_name="/txt2img")
    assert len(gallery) == 1


def test_refresh_and_select_checkpoint_including_a_corrupt_one(ui, tiny_checkpoints):
    services, client = ui
    ckpt_dir = services.settings.paths.ckpt_dir
    shutil.copy(tiny_checkpoints["sd1-other"], ckpt_dir / "second.safetensors")
    (ckpt_dir / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    client.predict(api_name="/refresh_checkpoints")
    assert "second.safetensors" in services.models.checkpoint_titles()
    value, message, _note = client.predict("broken.safetensors", api_name="/select_checkpoint")
    assert "Could not load broken.safetensors" in message
    assert value == "tiny-sd1.safetensors"
    value, message, _note = client.predict("second.safetensors", api_name="/select_checkpoint")
    assert value == "second.safetensors" and "Loaded" in message
    info = client.predict(*txt2img_args(size_v=1), api_name="/txt2img")[2]
    assert "Model: second" in info
    value, _message, _note = client.predict("tiny-sd1.safetensors", api_name="/select_checkpoint")
    assert value == "tiny-sd1.safetensors"


def test_seed_buttons(ui):
    _, client = ui
    assert client.predict(api_name="/random_seed") == -1
    client.predict(*txt2img_args(seed_v=-1, size_v=1), api_name="/txt2img")
    info = client.predict(*txt2img_args(seed_v=777, size_v=1), api_name="/txt2img")[2]
    assert "Seed: 777" in info
    assert client.predict(api_name="/reuse_seed") == 777  # the recycle button reuses the last image's seed
