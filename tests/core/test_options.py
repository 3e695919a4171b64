from __future__ import annotations

import json
import re
from pathlib import Path

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


@pytest.mark.parametrize(("values", "message"), [
    ({"CLIP_stop_at_last_layers": 13}, "from 1 to 12"),
    ({"CLIP_stop_at_last_layers": 1.5}, "whole number"),
    ({"default_sampler": "Nonsense"}, "known sampler"),
    ({"samples_filename_pattern": "[seed]-[bogus]"}, "[bogus]"),
    ({"samples_save": "maybe"}, "true or false"),
    ({"quicksettings_list": 3}, "list of names"),
])
def test_invalid_values_are_refused_with_a_message(tmp_path, values, message):
    path = tmp_path / "config.json"
    options = Options(path)
    with pytest.raises(ValidationError, match=re.escape(message)):
        options.update(values)
    assert not path.exists()


def test_values_are_normalised_and_changes_reported(tmp_path):
    options = Options(tmp_path / "config.json")
    changed = options.update({"CLIP_stop_at_last_layers": 2.0, "samples_format": "JPG", "default_sampler": "k_euler",
                              "quicksettings_list": "sd_model_checkpoint, CLIP_stop_at_last_layers",
                              "samples_save": True})
    assert changed == ["CLIP_stop_at_last_layers", "samples_format", "default_sampler", "quicksettings_list"]
    assert options.get("CLIP_stop_at_last_layers") == 2
    assert options.get("samples_format") == "jpg"
    assert options.get("default_sampler") == "Euler"
    assert options.get("quicksettings_list") == ["sd_model_checkpoint", "CLIP_stop_at_last_layers"]


def test_one_bad_value_applies_nothing(tmp_path):
    options = Options(tmp_path / "config.json")
    with pytest.raises(ValidationError):
        options.update({"samples_format": "webp", "CLIP_stop_at_last_layers": 0})
    assert options.get("samples_format") == "png"


def test_bad_values_in_the_file_read_as_defaults_but_a1111_patterns_are_kept(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"CLIP_stop_at_last_layers": 40, "samples_format": "bmp",
                                "samples_filename_pattern": "[seed]-[styles]"}))
    options = Options(path)
    assert options.get("CLIP_stop_at_last_layers") == 1
    assert options.get("samples_format") == "png"
    assert options.get("samples_filename_pattern") == "[seed]-[styles]"  # unknown tokens are written literally


def test_output_dir_is_relative_to_the_data_dir(tmp_path):
    options = Options(tmp_path / "config.json")
    assert options.output_dir("outdir_txt2img_samples", tmp_path) == tmp_path / "outputs" / "txt2img-images"
    options.update({"outdir_txt2img_samples": "elsewhere/imgs"})
    assert options.output_dir("outdir_txt2img_samples", tmp_path) == tmp_path / "elsewhere" / "imgs"
    options.update({"outdir_txt2img_samples": str(tmp_path / "abs")})
    assert options.output_dir("outdir_txt2img_samples", Path("/unused")) == tmp_path / "abs"
    options.update({"outdir_txt2img_samples": "  "})
    assert options.output_dir("outdir_txt2img_samples", tmp_path) == tmp_path / "outputs" / "txt2img-images"


def test_a_config_file_that_is_not_an_object_starts_from_defaults(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    assert Options(path).get("samples_format") == "png"
