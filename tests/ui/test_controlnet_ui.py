"""The ControlNet section through gradio_client against the real app: a tiny SD1 ControlNet (and an SDXL one that
the filter must hide), 64x64, 2 steps."""
from __future__ import annotations

import html

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.control import INFOTEXT_KEY_PREFIX
from webui.engine.output.png import read_infotext
from webui.ui.controlnet.unit_values import UNIT_FIELDS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services
    from webui.testing.tiny_controlnet import write_tiny_controlnet

    data_dir = make_data_dir(tmp_path_factory.mktemp("controlnet-ui"), tiny_checkpoints, ("sd1",))
    control_dir = data_dir / "models" / "ControlNet"
    write_tiny_controlnet(control_dir / "tiny-canny-sd1.safetensors", "sd1", layout="ldm")
    write_tiny_controlnet(control_dir / "tiny-sdxl.safetensors", "sdxl")
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


@pytest.fixture(scope="module")
def control_image(tmp_path_factory) -> str:
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 48, 48), outline="white", width=3)
    path = tmp_path_factory.mktemp("control") / "square.png"
    image.save(path)
    return str(path)


def _params(client: Client, api_name: str) -> list[dict]:
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]


# A unit's endpoint parameters: its fields but the image (a session State, set with `<tab>_controlnet_image_<n>`).
API_FIELDS = tuple(name for name in UNIT_FIELDS if name != "image")


def _unit_start(params: list[dict]) -> int:
    labels = [p.get("label") for p in params]
    return next(i for i in range(len(labels)) if labels[i:i + 2] == ["Enable", "Use the img2img input"])


def _set_images(client: Client, tab: str, images: list[str | None]) -> None:
    """The units' control images, as uploading them does (None clears)."""
    for index, image in enumerate(images):
        client.predict(handle_file(image) if image else None, api_name=f"/{tab}_controlnet_image_{index}")


def _txt2img(client: Client, units: list[dict] | None = None):
    """txt2img with small defaults; each unit's values are `API_FIELDS` in order, from unit 0's "Enable" on, and its
    "image" is set through the unit's image endpoint first."""
    units = units or []
    _set_images(client, "txt2img", [unit.get("image") for unit in units] + [None] * (3 - len(units)))
    params = _params(client, "/txt2img")
    named = {"prompt_v": "a red circle", "negative_v": "", "sampler_v": "Euler", "steps_v": 2, "width_v": 64,
             "height_v": 64, "cfg_v": 5, "seed_v": 5, "count_v": 1, "size_v": 1, "clip_skip_v": 1}
    args = [named[p["parameter_name"]] if p["parameter_name"] in named
            else p.get("parameter_default") if p.get("parameter_has_default") else None for p in params]
    start = _unit_start(params)
    for index, unit in enumerate(units):
        for name, value in unit.items():
            if name != "image":
                args[start + index * len(API_FIELDS) + API_FIELDS.index(name)] = value
    return client.predict(*args, api_name="/txt2img")


def _is_grey_with_edges(path) -> bool:
    rgb = _pixels(path)
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() and rgb.max() > 10
                and np.median(rgb) == 0)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _unit(image: str, **changes) -> dict:
    return {"enabled": True, "image": image, "module": "canny", "model": "tiny-canny-sd1",
            **changes}


def test_model_dropdown_lists_only_the_loaded_familys_controlnets(ui):
    _services, client = ui
    models = client.predict(None, None, None, api_name="/txt2img_controlnet_refresh_0")
    choices = [choice[0] if isinstance(choice, list | tuple) else choice
               for choice in models[0]["choices"]]
    assert choices[0] == "None"
    assert any(name.startswith("tiny-canny-sd1 [") for name in choices)
    assert not any(name.startswith("tiny-sdxl") for name in choices)


def test_enabling_a_unit_changes_the_image_and_records_it(ui, control_image):
    _services, client = ui
    titles = client.predict(None, None, None, api_name="/txt2img_controlnet_refresh_0")[0]["choices"]
    title = next(c[0] if isinstance(c, list | tuple) else c for c in titles
                 if (c[0] if isinstance(c, list | tuple) else c).startswith("tiny-canny-sd1"))
    plain, *_rest = _txt2img(client)
    disabled, *_rest = _txt2img(client, [_unit(control_image, model=title, enabled=False)])
    controlled, _progress, info, message = _txt2img(client, [_unit(control_image, model=title)])[:4]
    assert message == ""
    assert np.array_equal(_pixels(plain[0]["image"]), _pixels(disabled[0]["image"]))
    assert not np.array_equal(_pixels(plain[0]["image"]), _pixels(controlled[0]["image"]))
    saved = read_infotext(Image.open(controlled[0]["image"])) or info
    assert f'{INFOTEXT_KEY_PREFIX}0: "Module: canny, Model: {title}' in saved


def test_an_enabled_unit_without_an_image_is_a_message(ui):
    _services, client = ui
    result = _txt2img(client, [{"enabled": True, "module": "canny", "model": "None"}])
    assert "no control image" in result[3]


def test_preview_returns_the_detected_map(ui, control_image):
    _services, client = ui
    preview = client.predict("canny", handle_file(control_image), 128, 100, 200,
                             api_name="/txt2img_controlnet_preview_0")
    detected = Image.open(preview)
    assert detected.size == (128, 128)
    edges = np.asarray(detected.convert("L"))
    assert edges.max() == 255 and edges[64, 64] == 0 and edges[:20, :20].max() == 0
    inverted = Image.open(client.predict("invert (from white bg & black line)", handle_file(control_image), 64,
                                         0, 0, api_name="/txt2img_controlnet_preview_0"))
    assert np.asarray(inverted.convert("L"))[5, 5] == 255  # the black corner became white


def test_paste_restores_the_units_an_infotext_records(ui):
    from webui.core.control import ControlUnit, infotext_entries
    from webui.core.infotext import build_infotext
    from webui.ui.controlnet.unit_values import PASTED_FIELDS
    from webui.ui.paste_plan import PASTE_FIELDS

    _services, client = ui
    title = next(c[0] if isinstance(c, list | tuple) else c
                 for c in client.predict(None, None, None, api_name="/txt2img_controlnet_refresh_0")[0]["choices"]
                 if (c[0] if isinstance(c, list | tuple) else c).startswith("tiny-canny-sd1"))
    unit = ControlUnit(module="canny", model=title, weight=0.7, threshold_a=90.0, threshold_b=180.0,
                       guidance_end=0.5, control_mode="My prompt is more important", resize_mode="Just Resize")
    text = build_infotext("a red circle", "", {"Steps": 2, "Sampler": "Euler", "CFG scale": 5, "Seed": 5,
                                               "Size": "64x64", **dict(infotext_entries([unit]))})
    outputs = client.predict(text, api_name="/txt2img_paste")
    # after the fields, extra seed, checkpoint, demo note and message come the sections: the units first
    start = len(PASTE_FIELDS) + 4
    units = outputs[start:start + 3 * len(PASTED_FIELDS)]
    first = {name: value["value"] if isinstance(value, dict) else value  # sliders/model come as updates
             for name, value in zip(PASTED_FIELDS, units[:len(PASTED_FIELDS)], strict=True)}
    shaped = dict(zip(PASTED_FIELDS, units[:len(PASTED_FIELDS)], strict=True))
    assert shaped["threshold_a"]["label"] == "Canny Low Threshold" and shaped["threshold_a"]["visible"] is True
    assert first["enabled"] is True and first["module"] == "canny" and first["model"] == title
    assert (first["weight"], first["guidance_end"], first["threshold_a"], first["threshold_b"]) == \
        (0.7, 0.5, 90.0, 180.0)
    assert first["control_mode"] == "My prompt is more important" and first["resize_mode"] == "Just Resize"
    assert units[len(PASTED_FIELDS)] is False  # unit 1 is not in the infotext: disabled


def test_img2img_unit_can_use_the_img2img_input(ui, control_image):
    _services, client = ui
    title = next(c[0] if isinstance(c, list | tuple) else c
                 for c in client.predict(None, None, None, api_name="/img2img_controlnet_refresh_0")[0]["choices"]
                 if (c[0] if isinstance(c, list | tuple) else c).startswith("tiny-canny-sd1"))
    params = _params(client, "/img2img")
    named = {"mode_v": "img2img", "init_v": handle_file(control_image), "prompt_v": "a red circle",
             "negative_v": "", "sampler_v": "Euler", "steps_v": 2, "width_v": 64, "height_v": 64, "cfg_v": 5,
             "denoise_v": 0.8, "seed_v": 11, "count_v": 1, "size_v": 1, "clip_skip_v": 1}
    args = [named[p["parameter_name"]] if p["parameter_name"] in named
            else p.get("parameter_default") if p.get("parameter_has_default") else None for p in params]
    plain = client.predict(*args, api_name="/img2img")
    start = _unit_start(params)
    for name, value in {"enabled": True, "use_input": True, "module": "canny", "model": title}.items():
        args[start + API_FIELDS.index(name)] = value
    controlled = client.predict(*args, api_name="/img2img")
    assert controlled[3] == ""
    assert not np.array_equal(_pixels(plain[0][0]["image"]), _pixels(controlled[0][0]["image"]))
    assert 'ControlNet 0: "Module: canny' in html.unescape(controlled[2])


def test_save_detected_maps_checkbox_sets_the_option_and_maps_are_saved(ui, control_image):
    services, client = ui
    title = next(c[0] if isinstance(c, list | tuple) else c
                 for c in client.predict(None, None, None, api_name="/txt2img_controlnet_refresh_0")[0]["choices"]
                 if (c[0] if isinstance(c, list | tuple) else c).startswith("tiny-canny-sd1"))
    outputs = services.settings.paths.outputs_dir
    before = set(outputs.rglob("*.png"))
    client.predict(True, api_name="/txt2img_controlnet_save_maps")
    try:
        assert services.options.get("control_net_detectmap_autosaving") is True
        _txt2img(client, [_unit(control_image, model=title)])
        saved = set(outputs.rglob("*.png")) - before
        assert len(saved) == 2  # the image and its canny map
        grey = [path for path in saved if _is_grey_with_edges(path)]
        assert len(grey) == 1  # the canny map (edges on black, fitted to 64x64: thin, so dim); the image has colour
    finally:
        client.predict(False, api_name="/txt2img_controlnet_save_maps")
    assert services.options.get("control_net_detectmap_autosaving") is False
