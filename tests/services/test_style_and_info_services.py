"""Styles (save, apply to the prompt boxes and to a request, delete) and infotexts (partial paste, PNG info, the
checkpoint an infotext names) through their services, without a model."""
from __future__ import annotations

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.conftest import make_data_dir, make_settings
from webui.core.errors import ValidationError
from webui.core.requests import GenerationRequest


@pytest.fixture()
def services(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    services = build_services(make_settings(make_data_dir(tmp_path, tiny_checkpoints, ("sd1",))))
    yield services
    services.runtime.shutdown()


def test_styles_are_saved_applied_and_deleted(services):
    styles = services.styles
    assert styles.save_style(" gold ", "{prompt}, golden hour", "dark") == ["gold"]
    assert styles.apply_styles_to_prompt("a cat", "", ["gold"]) == ("a cat, golden hour", "dark")
    # A generation resolves its styles from the same store: merged into the prompts, then cleared.
    request = services.generation.resolve(GenerationRequest(prompt="a dog", styles=("gold",))).request
    assert (request.prompt, request.negative_prompt, request.styles) == ("a dog, golden hour", "dark", ())
    with pytest.raises(ValidationError, match=r"Unknown style\(s\): silver.*styles.csv"):
        services.generation.resolve(GenerationRequest(prompt="a dog", styles=("silver",)))
    assert [style.name for style in styles.style_rows()] == ["gold"]
    assert styles.delete_style("gold") == [] and styles.style_names() == []


def test_partial_infotext_names_only_its_fields(services):
    info = services.info
    assert info.infotext_fields("just a prompt") == {"prompt": "just a prompt", "negative_prompt": ""}
    fields = info.infotext_fields("a cat\nSteps: 7, Sampler: Euler, Model: tiny-sd1")
    assert fields["steps"] == 7 and fields["sampler_name"] == "Euler" and fields["model"] == "tiny-sd1"
    assert "seed" not in fields and "width" not in fields and "cfg_scale" not in fields
    assert info.parse_infotext("a cat\nSteps: 7, Seed: 3, Size: 64x32")["width"] == 64


def test_png_info_and_checkpoint_by_name(services, tmp_path):
    text = "a cat\nNegative prompt: dog\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 9, Size: 32x32"
    meta = PngInfo()
    meta.add_text("parameters", text)
    meta.add_text("comment", "hello")
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png", pnginfo=meta)
    shown = services.info.png_info(Image.open(tmp_path / "x.png"))
    assert shown["info"] == text and shown["items"] == {"comment": "hello"}
    assert shown["parameters"]["Seed"] == "9" and shown["parameters"]["Steps"] == "5"
    assert services.info.find_checkpoint_title("tiny-sd1", None) == "tiny-sd1.safetensors"
    assert services.info.find_checkpoint_title("nothing", "0badc0de") is None
    assert "Euler" in services.info.sampler_names() and "Karras" in services.info.schedule_types()
