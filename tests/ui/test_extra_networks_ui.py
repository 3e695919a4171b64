"""The Extra Networks panel in txt2img, driven through gradio_client against the real app (tiny
models, LoRA/embedding files written by the test in their real formats, in-process server)."""
from __future__ import annotations

import json
import re
import shutil
import uuid

import httpx
import pytest
import torch
from gradio_client import Client
from PIL import Image
from safetensors.torch import save_file

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.testing.lora_files import write_adapter
from webui.ui.extra_networks.views import MAX_CARDS, toggle_lora, toggle_word

P = "/txt2img_extra_networks_"
TAGS = {"10_alpha": {"alpha": 10, "red": 3, " blue ": 1}, "5_beta": {"red": 4, "green": 2}}
ALPHA_META = {"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "2",
              "ss_base_model_version": "sd_v1", "ss_sd_model_name": "v1-5-pruned.safetensors", "ss_num_epochs": "10",
              "ss_resolution": "(512, 512)", "ss_tag_frequency": json.dumps(TAGS)}
ALPHA_SIDECAR = {"preferred weight": 0.7, "activation text": "alphastyle, red", "negative text": "blurry",
                 "description": "A test style", "custom key": [1, 2]}


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("extra-networks"), tiny_checkpoints, ("sd1",))
    sub = data_dir / "models" / "Stable-diffusion" / "more"
    sub.mkdir()
    shutil.copy(tiny_checkpoints["sd1-other"], sub / "other.safetensors")
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    paths = services.settings.paths
    pipe = services.runtime.manager.require().pipeline
    alpha = write_adapter(paths.lora_dir / "styles" / "alpha_style.safetensors", pipe, "lora", rank=4,
                          metadata=ALPHA_META)
    alpha.with_suffix(".json").write_text(json.dumps(ALPHA_SIDECAR), encoding="utf-8")
    Image.new("RGB", (64, 96), "red").save(alpha.with_name("alpha_style.preview.png"))
    write_adapter(paths.lora_dir / "gamma.safetensors", pipe, "lora", rank=8, seed=1)
    write_adapter(paths.lycoris_dir / "beta_lokr.safetensors", pipe, "lokr", seed=2)
    hidden = pipe.text_encoder.config.hidden_size
    save_file({"emb_params": torch.randn(2, hidden)}, str(paths.embeddings_dir / "easyneg.safetensors"))
    save_file({"emb_params": torch.randn(1, hidden)}, str(paths.embeddings_dir / "easyneg-v2.safetensors"))
    services.models.refresh_models()
    services.runtime.loras.refresh()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False), server.url
    services.runtime.executor.shutdown()


def keys(cards_html: str) -> list[str]:
    return re.findall(r'data-key="([^"]+)"', cards_html)


def listing(client, kind: str, search: str = "", sort: str = "Name", descending: bool = False, folder: str = "All"):
    cards, _item = client.predict(search, sort, descending, folder, api_name=f"{P}{kind}_list")
    return cards


def test_toggle_opens_the_panel_with_every_tab_listed(ui):
    _, client, _ = ui
    queries = ["", "Name", False, "All"] * 3
    outputs = client.predict(*queries, api_name=f"{P}toggle")
    html = "".join(o for o in outputs if isinstance(o, str))
    assert {"tiny-sd1.safetensors", "more/other.safetensors", "easyneg", "easyneg-v2", "alpha_style", "gamma",
            "beta_lokr"} <= set(keys(html))


def test_lists_every_kind_with_previews_and_placeholders(ui):
    _, client, _ = ui
    loras = listing(client, "lora")
    assert keys(loras) == ["alpha_style", "beta_lokr", "gamma"]
    assert "data:image/jpeg;base64," in loras and loras.count("<img") == 1  # alpha's preview; others placeholders
    assert keys(listing(client, "textual_inversion")) == ["easyneg", "easyneg-v2"]
    checkpoints = listing(client, "checkpoints")
    assert keys(checkpoints) == ["more/other.safetensors", "tiny-sd1.safetensors"]
    assert "en-active" in checkpoints  # the loaded checkpoint is marked


def test_search_sort_and_folder_filter(ui):
    services, client, _ = ui
    assert keys(listing(client, "lora", search="ALPHA")) == ["alpha_style"]
    assert keys(listing(client, "lora", search="test style")) == ["alpha_style"]  # description words
    assert keys(listing(client, "lora", search="nothing-like-this")) == []
    assert keys(listing(client, "lora", descending=True)) == ["gamma", "beta_lokr", "alpha_style"]
    by_size = sorted(services.runtime.loras.entries(), key=lambda e: e.size)
    assert keys(listing(client, "lora", sort="Size")) == [e.name for e in by_size]
    assert keys(listing(client, "lora", sort="Size", descending=True)) == [e.name for e in reversed(by_size)]
    assert keys(listing(client, "lora", folder="LyCORIS")) == ["beta_lokr"]
    assert keys(listing(client, "lora", folder="Lora")) == ["alpha_style", "gamma"]
    assert keys(listing(client, "lora", folder="Lora/styles")) == ["alpha_style"]
    assert keys(listing(client, "checkpoints", folder="Stable-diffusion/more")) == ["more/other.safetensors"]


def test_refresh_finds_new_files_and_lists_folders(ui):
    services, client, _ = ui
    pipe = services.runtime.manager.require().pipeline
    write_adapter(services.settings.paths.lora_dir / "new" / "delta.safetensors", pipe, "lora", seed=5)
    try:
        cards, _item, folder = client.predict("", "Name", False, "All", api_name=f"{P}lora_refresh")
        assert "delta" in keys(cards) and folder["value"] == "All"
        assert ["Lora/new", "Lora/new"] in folder["choices"]
        assert services.networks.extra_network_folders("lora") == ["Lora", "Lora/new", "Lora/styles", "LyCORIS"]
    finally:
        shutil.rmtree(services.settings.paths.lora_dir / "new")
        client.predict("", "Name", False, "All", api_name=f"{P}lora_refresh")


def test_lora_card_adds_preferred_weight_and_activation_text_then_removes_them(ui):
    _, client, _ = ui
    prompt, negative, message = client.predict("alpha_style", "a red circle", "lowres", api_name=f"{P}lora_use")
    assert prompt == "a red circle <lora:alpha_style:0.7> alphastyle, red"
    assert negative == "lowres blurry" and "Added" in message
    prompt, negative, message = client.predict("alpha_style", prompt, negative, api_name=f"{P}lora_use")
    assert (prompt, negative) == ("a red circle", "lowres") and "Removed" in message
    prompt, _, _ = client.predict("gamma", "", "", api_name=f"{P}lora_use")
    assert prompt == "<lora:gamma:1>"  # no sidecar: weight 1
    prompt, _, message = client.predict("no-such-lora", "x", "", api_name=f"{P}lora_use")
    assert prompt == "x" and "No LoRA named 'no-such-lora'" in message


def test_embedding_card_inserts_its_name_and_removes_it_again(ui):
    _, client, _ = ui
    prompt, negative, _ = client.predict("easyneg", "a cat", "", False, api_name=f"{P}textual_inversion_use")
    assert prompt == "a cat easyneg"
    prompt, _, _ = client.predict("easyneg-v2", prompt, "", False, api_name=f"{P}textual_inversion_use")
    assert prompt == "a cat easyneg easyneg-v2"
    prompt, _, _ = client.predict("easyneg", prompt, "", False, api_name=f"{P}textual_inversion_use")
    assert prompt == "a cat easyneg-v2"  # the longer name is a different embedding
    _, negative, _ = client.predict("easyneg", "a cat", "lowres", True, api_name=f"{P}textual_inversion_use")
    assert negative == "lowres easyneg"


def test_checkpoint_card_switches_the_model(ui):
    services, client, _ = ui
    message, cards, checkpoint, _note = client.predict("more/other.safetensors", "", "Name", False, "All",
                                                       api_name=f"{P}checkpoints_use")
    try:
        assert "Loaded" in message and checkpoint["value"] == "more/other.safetensors"
        assert services.models.current_checkpoint() == "more/other.safetensors"
        assert re.search(r"en-card en-active' data-key=\"more/other.safetensors\"", cards)
        message, *_ = client.predict("missing.safetensors", "", "Name", False, "All", api_name=f"{P}checkpoints_use")
        assert "Could not load missing.safetensors" in message
        assert services.models.current_checkpoint() == "more/other.safetensors"
    finally:
        services.models.select_checkpoint("tiny-sd1.safetensors")


def test_details_show_kohya_metadata_and_the_sidecar(ui):
    _, client, _ = ui
    metadata, description, sd_version, activation, weight, negative, notes, message = client.predict(
        "alpha_style", api_name=f"{P}lora_details")
    assert message == ""
    for text in ("ss_network_dim", "ss_network_alpha", "ss_base_model_version", "sd_v1", "v1-5-pruned.safetensors",
                 "ss_num_epochs", "(512, 512)"):
        assert text in metadata
    tag_rows = re.findall(r"<tr><td>(\w+)</td><td>(\d+)</td></tr>", metadata.split("Tag frequency")[1])
    assert tag_rows[:4] == [("alpha", "10"), ("red", "7"), ("green", "2"), ("blue", "1")]
    assert (description, activation, weight, negative) == ("A test style", "alphastyle, red", 0.7, "blurry")
    assert sd_version == "Unknown" and notes == ""
    *_, message = client.predict("nope", api_name=f"{P}lora_details")
    assert "No LoRA named 'nope'" in message


def test_editing_the_sidecar_persists_and_keeps_unknown_keys(ui):
    services, client, _ = ui
    sidecar = services.settings.paths.lora_dir / "gamma.json"
    sidecar.write_text(json.dumps({"civitai": {"id": 5}, "notes": "old"}), encoding="utf-8")
    message = client.predict("gamma", "Gamma desc", "SD1", "gammatrigger", 0.55, "ugly", "my notes",
                             api_name=f"{P}lora_save")
    assert "Saved" in message
    assert json.loads(sidecar.read_text(encoding="utf-8")) == {
        "civitai": {"id": 5}, "notes": "my notes", "description": "Gamma desc", "sd version": "SD1",
        "activation text": "gammatrigger", "preferred weight": 0.55, "negative text": "ugly"}
    assert not [p for p in sidecar.parent.iterdir() if p.name.endswith(".tmp")]
    prompt, _, _ = client.predict("gamma", "", "", api_name=f"{P}lora_use")
    assert prompt == "<lora:gamma:0.55> gammatrigger"
    assert keys(listing(client, "lora", search="gamma desc")) == ["gamma"]
    # Embeddings and checkpoints get sidecars too (next to the file).
    client.predict("easyneg", "Negative helper", "SD1", "", 0, "", "", api_name=f"{P}textual_inversion_save")
    assert json.loads((services.settings.paths.embeddings_dir / "easyneg.json").read_text())["description"] == \
        "Negative helper"


def test_a_broken_sidecar_is_reported_not_overwritten(ui):
    services, client, _ = ui
    sidecar = services.settings.paths.lycoris_dir / "beta_lokr.json"
    sidecar.write_text("{broken", encoding="utf-8")
    try:
        message = client.predict("beta_lokr", "d", "SD1", "", 0, "", "", api_name=f"{P}lora_save")
        assert "cannot be read" in message and sidecar.read_text(encoding="utf-8") == "{broken"
        message = client.predict("beta_lokr", "d", "SD1", "", "heavy", "", "", api_name=f"{P}lora_save")
        assert "Error" in message
    finally:
        sidecar.unlink()


def _browser_click(url: str, client: Client, api_name: str, data: list, event_data: dict) -> list:
    """What the browser sends for a card click (the event data names the card), over Gradio's queue protocol."""
    dependency = next(d for d in client.config["dependencies"] if d.get("api_name") == api_name)
    session = uuid.uuid4().hex
    body = {"data": data, "event_data": event_data, "fn_index": dependency["id"],
            "trigger_id": dependency["targets"][0][0], "session_hash": session}
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post("/gradio_api/queue/join", json=body).raise_for_status()
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        assert message["success"], message
                        return message["output"]["data"]
    raise AssertionError("no result")


def test_clicking_a_card_in_the_browser(ui):
    _, client, url = ui
    # Outputs: item, details box, metadata, 6 editor fields, message, prompt, negative.
    output = _browser_click(url, client, "txt2img_extra_networks_lora_card", ["a cat", ""],
                            {"key": "alpha_style", "action": "use"})
    assert output[0] == "alpha_style" and output[10] == "a cat <lora:alpha_style:0.7> alphastyle, red"
    output = _browser_click(url, client, "txt2img_extra_networks_lora_card", ["a cat", ""],
                            {"key": "alpha_style", "action": "details"})
    assert "ss_network_dim" in output[2]
    output = _browser_click(url, client, "txt2img_extra_networks_lora_card", ["a cat", ""], {})
    assert output[10] is None or output[10] == {"__type__": "update"}


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    """A LoRA folder of 2,000 small safetensors files (no model needed to list them)."""
    from webui.services import build_services

    data_dir = tmp_path_factory.mktemp("bulk")
    folder = data_dir / "models" / "Lora"
    for index in range(2000):
        sub = folder / f"set{index % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.zeros(2)}, str(sub / f"net{index:04d}.safetensors"), metadata={"ss_network_dim": "4"})
    services = build_services(make_settings(data_dir, api=False))
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


def test_a_folder_of_two_thousand_files_lists(bulk):
    services, client = bulk
    cards, _item, _folder = client.predict("", "Name", False, "All", api_name=f"{P}lora_refresh")
    assert f"Showing {MAX_CARDS} of 2000 LoRAs" in cards and len(keys(cards)) == MAX_CARDS
    assert keys(cards)[:2] == ["net0000", "net0001"]
    assert len(keys(listing(client, "lora", folder="Lora/set1"))) == 500
    assert keys(listing(client, "lora", search="net1999")) == ["net1999"]


# ----- prompt editing rules (plain functions) -------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["", "a cat", "a cat, more", "line1\nline2"])
def test_lora_toggle_round_trips(prompt):
    added, was_added = toggle_lora(prompt, "x", "<lora:x:0.7>", "trig, word")
    assert was_added and added.endswith("<lora:x:0.7> trig, word")
    assert toggle_lora(added, "x", "<lora:x:0.7>", "trig, word") == (prompt, False)


def test_lora_toggle_removes_any_weight_and_lyco_tags_but_not_other_names():
    assert toggle_lora("a, <lora:x:1> trig, b <lyco:x:0.2:0.3>", "x", "<lora:x:1>", "trig") == ("a, b", False)
    assert toggle_lora("a <lora:xy:1>", "x", "<lora:x:1>", "") == ("a <lora:xy:1> <lora:x:1>", True)


def test_word_toggle_matches_whole_names_only():
    assert toggle_word("easynegative", "easyneg") == ("easynegative easyneg", True)
    assert toggle_word("a, easyneg, b", "easyneg") == ("a, b", False)
