"""The three built-in extensions in the real app (UI through gradio_client, the /sdapi API, the extension routes) on
the tiny SD1 model: dynamic prompts expand the same way for the same seed in the UI and the API; the image browser
finds a generated image by its prompt, sends its parameters to txt2img and deletes into the trash only inside the
outputs folder; tag autocomplete's route suggests tags, LoRA names and embeddings."""
from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import pytest
import torch
from gradio_client import Client
from PIL import Image
from safetensors.torch import save_file

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.infotext import parse_infotext
from webui.ui.paste_plan import PASTE_FIELDS

TEMPLATE = "a {red|green|blue|pink|grey} __critter__ [cat|dog] <lora:zorbtest:0.5>"
SMALL = {"steps": 1, "width": 32, "height": 32, "sampler_name": "Euler a"}


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("builtin-ext"), tiny_checkpoints, ("sd1",))
    (data_dir / "wildcards").mkdir()
    (data_dir / "wildcards" / "critter.txt").write_text("otter\nheron\nlynx\nmole\n", encoding="utf-8")
    (data_dir / "models" / "Lora").mkdir(parents=True)
    save_file({"lora_unet_none.alpha": torch.ones(())}, str(data_dir / "models" / "Lora" / "zorbtest.safetensors"))
    (data_dir / "embeddings").mkdir()
    save_file({"emb_params": torch.zeros(1, 768)}, str(data_dir / "embeddings" / "myembedding.safetensors"))
    (data_dir / "secret.png").write_bytes(b"not to be moved")
    services = build_services(make_settings(data_dir))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


def _api_txt2img(url: str, **body) -> dict:
    response = httpx.post(f"{url}/sdapi/v1/txt2img", json={**SMALL, **body}, timeout=300)
    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])


def _ui_txt2img(client: Client, by_name: dict, by_label: dict) -> tuple:
    """txt2img through the UI's Generate endpoint: every input at its default except those named (by parameter
    name, or by label for the extensions' controls, whose parameters are only numbered)."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/txt2img"]["parameters"]
    labels = dict(by_label)
    values = []
    for param in params:
        name, label = param["parameter_name"], param.get("label")
        if name in by_name:
            values.append(by_name[name])
        elif label in labels:
            values.append(labels.pop(label))
        else:
            values.append(param.get("parameter_default"))
    assert not labels, f"no such UI inputs: {labels}"
    return client.predict(*values, api_name="/txt2img")


# --- dynamic prompts ----------------------------------------------------------------------------------------------
def test_dynamic_prompts_same_seed_same_prompt_in_api_and_ui(app):
    services, url, client = app
    batch = _api_txt2img(url, prompt=TEMPLATE, seed=70, batch_size=3,
                         alwayson_scripts={"dynamic prompts": {"args": [True, False, 0, False]}})
    prompts = batch["all_prompts"]
    assert len(prompts) == 3 and len(set(prompts)) > 1 and batch["all_seeds"] == [70, 71, 72]
    for prompt, infotext in zip(prompts, batch["infotexts"], strict=True):
        assert prompt.split()[2] in {"otter", "heron", "lynx", "mole"}
        assert prompt.endswith(" [cat|dog] <lora:zorbtest:0.5>")
        params = parse_infotext(infotext)
        assert params.prompt == prompt and params.params["Template"] == TEMPLATE
    # The same seed alone, through the API with the settings' defaults and through the UI: the same prompt.
    alone = _api_txt2img(url, prompt=TEMPLATE, seed=71)
    assert alone["all_prompts"] == [prompts[1]]
    ui_info = _ui_infotext(client, prompt=TEMPLATE, seed=71)
    assert parse_infotext(ui_info).prompt == prompts[1]
    assert f"Template: {json.dumps(TEMPLATE)}" in ui_info or f"Template: {TEMPLATE}" in ui_info
    outputs = _ui_txt2img(client, {"prompt_v": "a {red|blue", "negative_v": "", "steps_v": 1, "width_v": 64,
                                   "height_v": 64}, {})
    assert outputs[0] in ([], {"__type__": "update"})  # no images
    assert any("could not read the prompt 'a {red|blue'" in str(value) for value in outputs), outputs


def test_dynamic_prompts_combinatorial_through_the_api(app):
    _, url, _ = app
    info = _api_txt2img(url, prompt="{red|blue} {circle|square} __critter__", seed=5,
                        alwayson_scripts={"dynamic-prompts": {"args": {"enabled": True, "combinatorial": True}}})
    assert len(info["all_prompts"]) == 2 * 2 * 4 == len(set(info["all_prompts"]))
    capped = _api_txt2img(url, prompt="{red|blue} {circle|square}", seed=5,
                          alwayson_scripts={"Dynamic Prompts": {"args": [True, True, 3, True]}})
    assert capped["all_prompts"] == ["red circle", "red square", "blue circle"] and capped["all_seeds"] == [5] * 3
    bad = httpx.post(f"{url}/sdapi/v1/txt2img", json={**SMALL, "prompt": "a {red|blue"}, timeout=300)
    assert bad.status_code == 422 and "could not read the prompt 'a {red|blue'" in bad.json()["detail"]


def _ui_infotext(client: Client, prompt: str, seed: int) -> str:
    outputs = _ui_txt2img(client, {"prompt_v": prompt, "negative_v": "", "seed_v": seed, "steps_v": 1,
                                   "width_v": 64, "height_v": 64, "count_v": 1, "size_v": 1},
                          {"Dynamic prompts enabled": True})
    assert len(outputs[0]) == 1, outputs
    with Image.open(outputs[0][0]["image"]) as shown:  # the saved file itself, as the browser receives it
        return shown.info["parameters"]


# --- image browser -----------------------------------------------------------------------------------------------
def _generate_saved(url: str, prompt: str, seed: int) -> None:
    _api_txt2img(url, prompt=prompt, seed=seed, save_images=True, width=64, height=64)  # the UI's smallest size


def _search(client: Client, text: str = "", model: str = "All", folder: str = "All", date_from: str = "",
            date_to: str = "") -> list[str]:
    gallery, _page, _status, *_ = client.predict(text, model, folder, date_from, date_to, 1,
                                                 api_name="/image-browser_search")
    return [item["caption"] for item in gallery]


def test_image_browser_finds_by_prompt_and_sends_to_txt2img(app):
    services, url, client = app
    _generate_saved(url, "a zebra striped lighthouse", 123)
    _generate_saved(url, "a plain meadow", 124)
    found = _search(client, "zebra STRIPED")
    assert len(found) == 1 and found[0].startswith("txt2img-images/") and found[0].endswith("-123.png")
    assert _search(client, "zebra", model="tiny-sd1") == found
    assert _search(client, "zebra", model="no-such-model") == []
    assert _search(client, "zebra", folder="txt2img-images") == found
    assert _search(client, "zebra", folder="img2img-images") == []
    today = date.today()
    assert _search(client, "zebra", date_from=today.isoformat(), date_to=today.isoformat()) == found
    assert _search(client, "zebra", date_from=(today + timedelta(days=1)).isoformat()) == []
    infotext, file_path, _status = client.predict(found[0], api_name="/image-browser_open")
    assert infotext.startswith("a zebra striped lighthouse\n") and "Seed: 123" in infotext
    sent = dict(zip(PASTE_FIELDS, client.predict(infotext, api_name="/image-browser_send_txt2img"), strict=False))
    assert (sent["prompt"], sent["seed"], sent["steps"], sent["width"], sent["height"]) == (
        "a zebra striped lighthouse", 123, 1, 64, 64)
    to_img2img = client.predict(infotext, file_path, api_name="/image-browser_send_img2img")
    assert to_img2img[0] == "a zebra striped lighthouse" and _sent_image(to_img2img).size == (64, 64)
    assert _sent_image(client.predict(file_path, api_name="/image-browser_send_extras")).size == (64, 64)


def _sent_image(outputs: tuple | str) -> Image.Image:
    """The one image among a "send to" button's outputs (gradio_client hands images over as files, and a single
    output alone)."""
    values = (outputs,) if isinstance(outputs, str) else outputs
    (path,) = [value for value in values if isinstance(value, str) and value.endswith((".png", ".webp"))]
    with Image.open(path) as image:
        return image.copy()


def test_image_browser_delete_moves_to_trash_and_refuses_other_paths(app):
    services, url, client = app
    outputs = services.settings.paths.outputs_dir
    _generate_saved(url, "a doomed teapot", 321)
    (rel,) = _search(client, "doomed teapot")
    status = client.predict(rel, api_name="/image-browser_delete")
    assert "Moved" in status and (outputs / ".trash" / rel).is_file() and not (outputs / rel).exists()
    assert _search(client, "doomed teapot") == []
    secret = services.settings.paths.data_dir / "secret.png"
    for bad in ("../secret.png", "txt2img-images/../../secret.png", str(secret), ".trash/" + rel):
        status = client.predict(bad, api_name="/image-browser_delete")
        assert status.startswith("**Not deleted:**"), bad
    assert secret.read_bytes() == b"not to be moved" and (outputs / ".trash" / rel).is_file()
    infotext, file_path, status = client.predict("../secret.png", api_name="/image-browser_open")
    assert (infotext, file_path) == ("", "") and "outputs folder" in status


# --- tag autocomplete --------------------------------------------------------------------------------------------
def test_tag_autocomplete_route_suggests_tags_loras_and_embeddings(app):
    _, url, _ = app

    def values(query: str) -> list[str]:
        response = httpx.get(f"{url}/ext/tag-autocomplete/tags", params={"q": query}, timeout=30)
        assert response.status_code == 200, response.text
        return [item["value"] for item in response.json()["suggestions"]]

    assert values("smi")[0] == "smile"
    assert "looking at viewer" in values("looking")
    assert values("<lora:zorb") == ["<lora:zorbtest:1>"]
    assert values("myemb") == ["myembedding"]
    assert values("qqqqq") == []
