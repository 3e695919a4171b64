from __future__ import annotations

import json

import pytest

from webui.core.errors import ValidationError
from webui.core.options import Options


def test_unknown_a1111_keys_survive_a_save(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"sd_model_checkpoint": "a.safetensors", "some_a1111_key": [1, 2], "x": "y"}))
    options = Options(path)
    options.update({"CLIP_stop_at_last_layers": 2})
    saved = json.loads(path.read_text())
    assert saved["some_a1111_key"] == [1, 2]
    assert saved["x"] == "y"
    assert saved["CLIP_stop_at_last_layers"] == 2
    assert Options(path).get("CLIP_stop_at_last_layers") == 2


def test_defaults_and_choices(tmp_path):
    options = Options(tmp_path / "config.json")
    assert options.get("samples_format") == "png"
    with pytest.raises(ValidationError):
        options.update({"samples_format": "bmp"})


def test_corrupt_config_starts_from_defaults(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    assert Options(path).get("sd_vae") == "Automatic"
