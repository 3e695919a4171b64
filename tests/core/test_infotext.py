"""Infotext writing and reading: A1111's exact shape, real samples, and round trips."""
from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webui.core.infotext import (
    ParsedInfotext,
    build_infotext,
    format_float,
    format_param_line,
    format_value,
    parse_infotext,
)

FULL_PARAMS: dict[str, object] = {
    "Version": "v1.10.1",
    "Lora hashes": "a: 0123456789ab, b: 89abcdef0123",
    "Hires upscale": 2.0,
    "Hires steps": 10,
    "Hires upscaler": "Latent",
    "Clip skip": 2,
    "Denoising strength": 0.55,
    "Seed resize from": (640, 448),
    "Variation seed strength": 0.25,
    "Variation seed": 987654321,
    "VAE": "vae-ft-mse-840000-ema-pruned.safetensors",
    "VAE hash": "735e4c3a44",
    "Model": "v1-5-pruned-emaonly",
    "Model hash": "6ce0161689",
    "Size": (512, 768),
    "Seed": 1234,
    "CFG scale": 7.5,
    "Schedule type": "Karras",
    "Sampler": "DPM++ 2M",
    "Steps": 28,
}


# ---------------------------------------------------------------------------------------------------------- writing


def test_build_uses_a1111_key_order_and_puts_version_last() -> None:
    text = build_infotext("a cat", "ugly", FULL_PARAMS)
    prompt, negative, params = text.split("\n")
    assert prompt == "a cat"
    assert negative == "Negative prompt: ugly"
    assert params == (
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234, Size: 512x768, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, "
        "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Variation seed: 987654321, Variation seed strength: 0.25, "
        "Seed resize from: 640x448, Denoising strength: 0.55, Clip skip: 2, "
        'Lora hashes: "a: 0123456789ab, b: 89abcdef0123", Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, '
        "Version: v1.10.1"
    )


def test_build_omits_empty_negative_none_values_and_default_clip_skip() -> None:
    text = build_infotext("a cat", "", {"Steps": 20, "Seed": 1, "VAE": None, "Model": "", "Clip skip": 1,
                                        "CFG scale": 7.0})
    assert text == "a cat\nSteps: 20, CFG scale: 7, Seed: 1"


@pytest.mark.parametrize(("value", "expected"), [(7.0, "7"), (7.5, "7.5"), (0.1, "0.1"), (-2.0, "-2"),
                                                 (1e-05, "1e-05"), (float("inf"), "inf")])
def test_floats_are_written_like_a1111(value: float, expected: str) -> None:
    assert format_float(value) == expected


@pytest.mark.parametrize(("value", "written"), [
    ("a, b", '"a, b"'),
    ("x: y", '"x: y"'),
    ("two\nlines", '"two\\nlines"'),
    ('"starts quoted"', '"\\"starts quoted\\""'),
    (" padded ", '" padded "'),
    ("ünïcode", "ünïcode"),
    ("plain", "plain"),
    ("with \"inner\" quotes", "with \"inner\" quotes"),
])
def test_values_that_would_break_the_line_are_json_quoted(value: str, written: str) -> None:
    assert format_param_line({"Key": value}) == f"Key: {written}"


def test_booleans_and_sizes_are_formatted() -> None:
    assert format_param_line({"Tiling": True, "Hires resize": (1024, 1536)}) == "Tiling: True, Hires resize: 1024x1536"


def test_empty_prompt_with_negative_keeps_the_negative_line() -> None:
    text = build_infotext("", "bad hands", {"Steps": 20, "Seed": 5, "CFG scale": 7})
    parsed = parse_infotext(text)
    assert parsed.prompt == ""
    assert parsed.negative_prompt == "bad hands"
    assert parsed.params["Seed"] == "5"


# ---------------------------------------------------------------------------------------------------------- reading

A1111_SAMPLE = """masterpiece, best quality, 1girl, (blue eyes:1.2),
standing in a field of flowers <lora:add_detail:0.6>
BREAK sunset
Negative prompt: (worst quality, low quality:1.4), EasyNegative,
bad hands
Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3547925321, Size: 512x768, Model hash: 6ce0161689, \
Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 1.75, Hires steps: 12, \
Hires upscaler: R-ESRGAN 4x+, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "EasyNegative: c74b4e810b03", \
ADetailer model: face_yolov8n.pt, Version: v1.6.0"""


def test_real_a1111_sample_is_split_into_prompt_negative_and_params() -> None:
    parsed = parse_infotext(A1111_SAMPLE)
    assert parsed.prompt == ("masterpiece, best quality, 1girl, (blue eyes:1.2),\n"
                             "standing in a field of flowers <lora:add_detail:0.6>\nBREAK sunset")
    assert parsed.negative_prompt == "(worst quality, low quality:1.4), EasyNegative,\nbad hands"
    assert parsed.params["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert parsed.params["TI hashes"] == "EasyNegative: c74b4e810b03"
    assert parsed.params["ADetailer model"] == "face_yolov8n.pt"  # unknown keys are kept
    assert parsed.params["Hires upscaler"] == "R-ESRGAN 4x+"
    assert parsed.params["Version"] == "v1.6.0"


def test_real_a1111_sample_typed_fields() -> None:
    fields = parse_infotext(A1111_SAMPLE).to_generation_fields()
    assert fields["steps"] == 30
    assert fields["sampler_name"] == "DPM++ 2M"
    assert fields["scheduler"] == "Karras"  # from the legacy combined name
    assert fields["cfg_scale"] == 6.5
    assert fields["seed"] == 3547925321
    assert (fields["width"], fields["height"]) == (512, 768)
    assert fields["clip_skip"] == 2
    assert fields["model"] == "v1-5-pruned-emaonly"
    assert fields["model_hash"] == "6ce0161689"
    assert fields["denoising_strength"] == 0.45
    assert fields["enable_hr"] is True
    assert fields["hr_scale"] == 1.75
    assert fields["hr_second_pass_steps"] == 12
    assert fields["hr_upscaler"] == "R-ESRGAN 4x+"


def test_lora_hashes_with_several_entries() -> None:
    text = 'cat\nSteps: 20, Sampler: Euler a, Seed: 1, Lora hashes: "a: 0123456789ab, b: 89abcdef0123", Version: v1'
    parsed = parse_infotext(text)
    assert parsed.params["Lora hashes"] == "a: 0123456789ab, b: 89abcdef0123"
    assert parsed.params["Version"] == "v1"


def test_missing_keys_take_a1111_defaults() -> None:
    parsed = parse_infotext("a dog\nSteps: 12, Sampler: Euler, CFG scale: 5, Seed: 9, Size: 768x512")
    fields = parsed.to_generation_fields()
    assert fields["clip_skip"] == 1
    assert fields["scheduler"] == "Automatic"
    assert parsed.get("Clip skip") == "1"
    assert parsed.get("Schedule type") == "Automatic"
    assert parsed.get("Nope") is None
    assert "model" not in fields and "enable_hr" not in fields
    assert fields["negative_prompt"] == ""


def test_explicit_schedule_type_wins_over_legacy_suffix() -> None:
    fields = parse_infotext("x\nSteps: 1, Sampler: DPM++ SDE Karras, Schedule type: Exponential, Seed: 1"
                            ).to_generation_fields()
    assert (fields["sampler_name"], fields["scheduler"]) == ("DPM++ SDE", "Exponential")


@pytest.mark.parametrize("text", [
    "just a prompt",
    "a prompt, with: colons and, commas",
    "line one\nline two: still, prompt",
    "Steps: 20, Sampler: Euler",  # only two pairs: not a parameter line
])
def test_text_without_parameter_line_is_all_prompt(text: str) -> None:
    parsed = parse_infotext(text)
    assert parsed.prompt == text
    assert parsed.negative_prompt == ""
    assert parsed.params == {}


def test_no_parameter_line_but_negative() -> None:
    parsed = parse_infotext("cat\nNegative prompt: dog")
    assert (parsed.prompt, parsed.negative_prompt, parsed.params) == ("cat", "dog", {})


def test_empty_text() -> None:
    assert parse_infotext("") == ParsedInfotext("", "", {})
    assert parse_infotext("   \n  ").to_generation_fields()["steps"] == 20


def test_hires_resize_variation_and_seed_resize_sizes() -> None:
    text = ("p\nSteps: 20, Seed: 1, Variation seed: 77, Variation seed strength: 0.3, Seed resize from: 640x448, "
            "Hires resize: 1024x1536, Hires upscaler: Latent")
    fields = parse_infotext(text).to_generation_fields()
    assert fields["subseed"] == 77 and fields["subseed_strength"] == 0.3
    assert (fields["seed_resize_from_w"], fields["seed_resize_from_h"]) == (640, 448)
    assert (fields["hr_resize_x"], fields["hr_resize_y"]) == (1024, 1536)
    assert fields["enable_hr"] is True


def test_malformed_values_fall_back_instead_of_raising() -> None:
    text = "p\nSteps: many, CFG scale: high, Seed: 20.0, Size: big, Clip skip: x"
    fields = parse_infotext(text).to_generation_fields()
    assert fields["steps"] == 20 and fields["cfg_scale"] == 7.0 and fields["clip_skip"] == 1
    assert fields["seed"] == 20
    assert (fields["width"], fields["height"]) == (512, 512)


def test_broken_quoted_value_is_kept_verbatim() -> None:
    parsed = parse_infotext('p\nSteps: 1, Seed: 2, Odd: "\\q"')
    assert parsed.params["Odd"] == '"\\q"'


def test_windows_line_endings() -> None:
    parsed = parse_infotext("cat\r\nNegative prompt: dog\r\nSteps: 20, Sampler: Euler a, Seed: 3\r\n")
    assert (parsed.prompt, parsed.negative_prompt) == ("cat", "dog")
    assert parsed.params["Seed"] == "3"


# ------------------------------------------------------------------------------------------------------ round trips


def test_every_field_round_trips() -> None:
    text = build_infotext("a cat,\n(sitting:1.2)", "blurry, lowres\nwatermark", FULL_PARAMS)
    parsed = parse_infotext(text)
    assert parsed.prompt == "a cat,\n(sitting:1.2)"
    assert parsed.negative_prompt == "blurry, lowres\nwatermark"
    assert list(parsed.params)[:3] == ["Steps", "Sampler", "Schedule type"]
    assert list(parsed.params)[-1] == "Version"
    fields = parsed.to_generation_fields()
    assert fields == {
        "prompt": "a cat,\n(sitting:1.2)",
        "negative_prompt": "blurry, lowres\nwatermark",
        "steps": 28,
        "sampler_name": "DPM++ 2M",
        "scheduler": "Karras",
        "cfg_scale": 7.5,
        "seed": 1234,
        "width": 512,
        "height": 768,
        "clip_skip": 2,
        "model": "v1-5-pruned-emaonly",
        "model_hash": "6ce0161689",
        "vae": "vae-ft-mse-840000-ema-pruned.safetensors",
        "vae_hash": "735e4c3a44",
        "subseed": 987654321,
        "subseed_strength": 0.25,
        "seed_resize_from_w": 640,
        "seed_resize_from_h": 448,
        "denoising_strength": 0.55,
        "hr_scale": 2.0,
        "hr_second_pass_steps": 10,
        "hr_upscaler": "Latent",
        "enable_hr": True,
        "version": "v1.10.1",
    }
    assert parsed.params["Lora hashes"] == "a: 0123456789ab, b: 89abcdef0123"


def test_rebuilding_a_parsed_infotext_gives_the_same_text() -> None:
    text = build_infotext("a cat", "dog", FULL_PARAMS)
    parsed = parse_infotext(text)
    assert build_infotext(parsed.prompt, parsed.negative_prompt, parsed.params) == text


# A prompt line survives exactly when it has no surrounding whitespace (A1111 strips lines) and does not itself
# start with "Negative prompt:".
_line = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30).map(str.strip)
_prompt = st.lists(_line, max_size=4).map("\n".join).map(str.strip).filter(
    lambda text: not any(line.startswith("Negative prompt:") for line in text.split("\n")))
_key = st.text(string.ascii_letters + string.digits + " -/", min_size=1, max_size=12).map(
    lambda tail: "K" + tail.rstrip() + "z")
_value = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
    st.integers(),
    st.floats(allow_nan=False),
)


@settings(max_examples=300)
@given(prompt=_prompt, negative=_prompt, extra=st.dictionaries(_key, _value, max_size=5))
def test_property_prompt_negative_and_params_round_trip(prompt: str, negative: str, extra: dict[str, object]) -> None:
    params: dict[str, object] = {"Steps": 20, "Sampler": "Euler a", "Seed": 42, **extra}
    parsed = parse_infotext(build_infotext(prompt, negative, params))
    assert parsed.prompt == prompt
    assert parsed.negative_prompt == negative
    assert parsed.params == {key: format_value(value) for key, value in params.items()}


@given(st.text(max_size=300))
def test_property_any_text_parses_without_exception(text: str) -> None:
    parsed = parse_infotext(text)
    parsed.to_generation_fields()
    assert isinstance(parsed.prompt, str) and isinstance(parsed.negative_prompt, str)


@given(prompt=st.text(max_size=80), negative=st.text(max_size=80),
       params=st.dictionaries(st.text(max_size=15), st.one_of(st.text(max_size=20), st.floats(), st.integers())))
def test_property_any_input_builds_and_parses_without_exception(prompt: str, negative: str,
                                                                params: dict[str, object]) -> None:
    parse_infotext(build_infotext(prompt, negative, params)).to_generation_fields()
