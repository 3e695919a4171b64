"""Sidecar `name.json`, previews and kohya metadata summaries (engine/models/sidecars.py): plain files, no models."""
from __future__ import annotations

import json
import os

import pytest

from webui.core.errors import ValidationError, WebUIError
from webui.engine.models.sidecars import (
    CompanionFinder,
    clean_sidecar_values,
    preferred_weight,
    read_sidecar,
    sidecar_path,
    tag_frequency,
    training_summary,
    write_sidecar,
)


def test_write_merges_keeps_unknown_keys_and_leaves_no_temp_file(tmp_path):
    model = tmp_path / "my.lora.v2.safetensors"
    model.write_bytes(b"x")
    assert sidecar_path(model).name == "my.lora.v2.json"
    sidecar_path(model).write_text(json.dumps({"modelId": 7, "notes": "old"}), encoding="utf-8")
    written = write_sidecar(model, {"notes": "new", "preferred weight": 0.5, "activation text": "ünïcode"})
    on_disk = json.loads(sidecar_path(model).read_text(encoding="utf-8"))
    assert on_disk == written == {"modelId": 7, "notes": "new", "preferred weight": 0.5, "activation text": "ünïcode"}
    assert sorted(os.listdir(tmp_path)) == ["my.lora.v2.json", "my.lora.v2.safetensors"]


def test_write_refuses_to_replace_a_broken_file_and_reading_it_gives_nothing(tmp_path):
    model = tmp_path / "a.safetensors"
    sidecar_path(model).write_text("[1, 2]", encoding="utf-8")
    assert read_sidecar(model) == {}
    with pytest.raises(WebUIError, match="does not hold a JSON object"):
        write_sidecar(model, {"notes": "x"})
    sidecar_path(model).write_text("{oops", encoding="utf-8")
    with pytest.raises(WebUIError, match="cannot be read"):
        write_sidecar(model, {"notes": "x"})
    assert sidecar_path(model).read_text(encoding="utf-8") == "{oops"


def test_a_diffusers_folder_has_its_companions_beside_it(tmp_path):
    folder = tmp_path / "model.v1"
    folder.mkdir()
    write_sidecar(folder, {"description": "d"})
    assert (tmp_path / "model.v1.json").is_file()


@pytest.mark.parametrize(("value", "expected"), [(0.7, 0.7), ("0.4", 0.4), (0, 1.0), (None, 1.0), ("x", 1.0),
                                                 (float("nan"), 1.0)])
def test_preferred_weight(value, expected):
    assert preferred_weight({"preferred weight": value}) == expected


def test_clean_values_checks_keys_and_the_weight():
    assert clean_sidecar_values({"preferred weight": "0.25", "notes": None}) == {"preferred weight": 0.25, "notes": ""}
    with pytest.raises(ValidationError, match="Unknown sidecar field"):
        clean_sidecar_values({"bogus": 1})
    with pytest.raises(ValidationError, match="must be a number"):
        clean_sidecar_values({"preferred weight": "heavy"})


def test_previews_in_a1111_order_from_one_listing(tmp_path):
    model = tmp_path / "net.safetensors"
    model.write_bytes(b"x")
    (tmp_path / "net.preview.webp").write_bytes(b"x")
    finder = CompanionFinder()
    assert finder.preview(model) == tmp_path / "net.preview.webp"
    (tmp_path / "net.png").write_bytes(b"x")
    assert CompanionFinder().preview(model) == tmp_path / "net.png"
    assert finder.sidecar(model) == {}
    assert CompanionFinder().preview(tmp_path / "other.safetensors") is None


def test_training_summary_and_tag_frequency():
    meta = {"ss_network_dim": "16", "ss_network_alpha": "8", "ss_base_model_version": "sdxl_base_v1-0",
            "ss_num_epochs": "", "ss_tag_frequency": json.dumps({"10_a": {"cat": 5, " dog": 2}, "3_b": {"dog": 4}})}
    assert training_summary(meta) == [("ss_base_model_version", "Base model", "sdxl_base_v1-0"),
                                      ("ss_network_dim", "Dim", "16"), ("ss_network_alpha", "Alpha", "8")]
    assert tag_frequency(meta) == [("dog", 6), ("cat", 5)]
    assert tag_frequency({"ss_tag_frequency": "{not json"}) == []
    assert tag_frequency({"ss_tag_frequency": json.dumps({"a": {"x": "many"}})}) == []
