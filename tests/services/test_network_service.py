"""Extra Networks through the network service: cards found, filtered, sorted and marked; a LoRA card's prompt
parts from its sidecar; details from the file's header; unknown names and kinds refused with a message."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import make_settings
from webui.core.errors import ModelNotFoundError, ValidationError
from webui.core.prompt_network_tags import extract_extra_networks


@pytest.fixture()
def services(tmp_path):
    from webui.services import build_services

    lora_dir = tmp_path / "models" / "Lora"
    (lora_dir / "styles").mkdir(parents=True)
    for index, (name, folder) in enumerate((("zebra", lora_dir), ("apple", lora_dir / "styles"),
                                            ("mango", lora_dir / "styles"))):
        path = folder / f"{name}.safetensors"
        save_file({"w": torch.zeros(4 * (index + 1))}, str(path), metadata={"ss_output_name": f"{name}-out"})
        os.utime(path, ns=(10**18 + index, 10**18 + index))  # apple newer than zebra, mango newest
    (lora_dir / "styles" / "mango.json").write_text('{"description": "tropical fruit", "activation text": '
                                                    '"mango style", "preferred weight": 0.7}')
    services = build_services(make_settings(tmp_path))
    yield services
    services.runtime.shutdown()


def test_cards_filter_by_words_and_folder_and_sort(services):
    networks = services.networks
    assert [c["name"] for c in networks.extra_network_cards("lora")] == ["apple", "mango", "zebra"]
    assert [c["name"] for c in networks.extra_network_cards("lora", sort="date", descending=True)] == \
        ["mango", "apple", "zebra"]
    assert [c["name"] for c in networks.extra_network_cards("lora", search="TROPICAL")] == ["mango"]
    assert [c["name"] for c in networks.extra_network_cards("lora", folder="Lora/styles")] == ["apple", "mango"]
    assert networks.extra_network_folders("lora") == ["Lora", "Lora/styles"]
    with pytest.raises(ValidationError, match="Unknown sort"):
        networks.extra_network_cards("lora", sort="colour")
    with pytest.raises(ValidationError, match="Unknown extra network kind"):
        networks.extra_network_cards("hypernetworks")


def test_lora_card_prompt_parts_and_details(services):
    networks = services.networks
    assert networks.lora_prompt_parts("mango") == {"tag": "<lora:mango:0.7>", "activation": "mango style",
                                                   "negative": ""}
    assert networks.lora_prompt_parts("apple")["tag"] == "<lora:apple:1>"
    details = networks.extra_network_details("lora", "apple")
    assert details["folder"] == "Lora/styles" and details["metadata"]["ss_output_name"] == "apple-out"
    saved = networks.save_extra_network_sidecar("lora", "apple", {"description": "red"})
    assert saved["description"] == "red" and networks.extra_network_sidecar("lora", "apple")["description"] == "red"
    with pytest.raises(ModelNotFoundError, match="No LoRA named 'pear'"):
        networks.lora_prompt_parts("pear")


def test_lora_tags_resolve_to_files_and_unknown_ones_become_notes(services):
    _, calls = extract_extra_networks("a cat <lora:apple:0.5> <lora:pear:1> <hypernet:x:1>")
    requests, notes = services.networks.resolve_loras(calls)
    assert [(r.name, r.te_weight) for r in requests] == [("apple", 0.5)]
    assert any("'pear' not found" in note for note in notes) and any("'hypernet'" in note for note in notes)
    assert sorted(row["alias"] for row in services.networks.lora_list()) == ["apple-out", "mango-out", "zebra-out"]
