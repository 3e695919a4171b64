"""Scripts from the txt2img tab, driven through gradio_client against the real app (tiny model, 64x64, 1 step)."""
from __future__ import annotations

import time

import pytest
from gradio_client import Client
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.infotext import parse_infotext
from webui.engine.output.png import read_infotext

FAST = {"prompt_v": "a red circle", "sampler_v": "Euler", "steps_v": 1, "width_v": 64, "height_v": 64, "cfg_v": 5,
        "seed_v": 77, "count_v": 1, "size_v": 1}


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("scripts-ui"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


def txt2img_args(client: Client, script: list, **fields) -> list:
    """Every /txt2img parameter at its default, the tab's fields by name, the script's values from "Script" on.
    Built from the endpoint's own description so other sections of the tab may add inputs freely."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/txt2img"]["parameters"]
    values = [{**FAST, **fields}.get(p["parameter_name"], p.get("parameter_default")) for p in params]
    start = [p["label"] for p in params].index("Script")
    values[start:start + len(script)] = script
    return values


def xyz(x=("Steps", "1, 2", []), y=("Nothing", "", []), z=("Nothing", "", []), legend=True, keep=False,
        sub_images=False, sub_grids=False, margin=0) -> list:
    return ["X/Y/Z plot", *x, *y, *z, legend, keep, False, False, False, sub_images, sub_grids, margin]


def test_xyz_plot_from_the_ui_shows_the_grid_first(ui):
    services, client = ui
    script = xyz(x=("Steps", "1, 2", []), y=("Sampler", "", ["Euler", "DDIM"]), sub_images=True)
    gallery, _progress, info, message = client.predict(*txt2img_args(client, script), api_name="/txt2img")
    assert message == ""
    assert len(gallery) == 1 + 4
    grid = Image.open(gallery[0]["image"])
    assert grid.width > 2 * 64 and grid.height > 2 * 64  # two columns, two rows, legends
    text = read_infotext(grid)
    assert text is not None and parse_infotext(text).params["Script"] == "X/Y/Z plot"
    assert "Script: X/Y/Z plot" in info and "X Type: Steps" in info
    saved = list((services.settings.paths.outputs_dir / "txt2img-grids").rglob("xyz_grid-*.png"))
    assert len(saved) == 1
    assert [parse_infotext(read_infotext(Image.open(item["image"]))).params["Sampler"] for item in gallery[1:]] == [
        "Euler", "Euler", "DDIM", "DDIM"]


def test_prompt_matrix_from_the_ui(ui):
    _, client = ui
    script = ["Prompt matrix", *xyz()[1:], False, True, "positive", "comma", 4]
    gallery, _progress, info, message = client.predict(
        *txt2img_args(client, script, prompt_v="a circle|red|on grass"), api_name="/txt2img")
    assert message == ""
    assert len(gallery) == 5 and [item["caption"] for item in gallery[1:]] == [
        "Seed 77", "Seed 78", "Seed 79", "Seed 80"]
    assert "a circle|red|on grass" in info


def test_no_script_is_the_plain_generation(ui):
    _, client = ui
    gallery, *_ = client.predict(*txt2img_args(client, ["None"]), api_name="/txt2img")
    assert len(gallery) == 1 and gallery[0]["caption"] == "Seed 77"


def test_enumerable_axes_get_pickers_with_current_choices(ui):
    _, client = ui
    values, picks = client.predict("Checkpoint name", api_name="/txt2img_xyz_y_type")  # (the fill button is no data)
    assert "tiny-sd1.safetensors" in picks["choices"][0] and picks["visible"] is True
    assert values["visible"] is False
    values, picks = client.predict("Steps", api_name="/txt2img_xyz_y_type")
    assert values["visible"] is True and picks["visible"] is False
    filled = client.predict("Sampler", api_name="/txt2img_xyz_x_fill")
    assert "Euler a" in filled and "DPM++ 2M" in filled


def test_bad_script_values_show_a_message(ui):
    _, client = ui
    args = txt2img_args(client, xyz(x=("Prompt S/R", "dog, cat", [])))
    *_, message = client.predict(*args, api_name="/txt2img")
    assert "Prompt S/R did not find 'dog'" in message


def test_interrupt_stops_the_whole_plot_and_shows_what_was_made(ui):
    services, client = ui
    images = services.settings.paths.outputs_dir / "txt2img-images"
    before = len(list(images.rglob("*.png")))
    job = client.submit(*txt2img_args(client, xyz(x=("Seed", "1-60", []))), api_name="/txt2img")
    deadline = time.monotonic() + 60
    while services.queue.progress().job_no < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    client.predict(api_name="/interrupt")
    gallery, _progress, _info, message = job.result(timeout=120)
    assert "Interrupted" in message
    assert len(gallery) == 1  # the grid of the cells made so far
    made = len(list(images.rglob("*.png"))) - before
    assert 2 <= made < 60  # finished cells are kept (saved), the rest never ran
