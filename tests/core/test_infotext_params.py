"""Infotext -> A1111's `parse_generation_parameters` dict (png-info's `parameters`): the exact dicts A1111 builds
for these texts with its default settings, worked out by hand from its algorithm."""
from __future__ import annotations

from webui.core.infotext_params import parse_generation_parameters

# What A1111 adds to every result (keys the text does not set), with A1111's types.
DEFAULTS = {
    "Clip skip": "1", "Hires resize-1": 0, "Hires resize-2": 0, "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler", "Hires checkpoint": "Use same checkpoint", "Hires prompt": "",
    "Hires negative prompt": "", "Mask mode": "Inpaint masked", "Masked content": "original",
    "Inpaint area": "Whole picture", "Masked area padding": 32, "RNG": "GPU", "Schedule type": "Automatic",
    "Schedule max sigma": 0, "Schedule min sigma": 0, "Schedule rho": 0, "VAE Encoder": "Full",
    "VAE Decoder": "Full", "FP8 weight": "Disable", "Refiner switch by sampling steps": False,
}


def test_a_current_a1111_infotext():
    text = ("girl, (blue eyes:1.2)\nwith a hat\nNegative prompt: ugly\n"
            'Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 965400086, Size: 512x768, '
            'Model hash: 45dee52b, Model: v1-5, Lora hashes: "a: 1234, b: 5678", Clip skip: 2, Version: v1.10.1')
    assert parse_generation_parameters(text) == {
        **DEFAULTS,
        "Steps": "20", "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": "7.5", "Seed": "965400086",
        "Size-1": "512", "Size-2": "768", "Model hash": "45dee52b", "Model": "v1-5", "Clip skip": "2",
        "Lora hashes": "a: 1234, b: 5678", "Version": "v1.10.1",
        "Prompt": "girl, (blue eyes:1.2)\nwith a hat", "Negative prompt": "ugly", "Emphasis": "Original",
    }


def test_an_old_infotext_gets_the_first_pass_size_and_the_backwards_compatibility_options():
    text = ("a [cat:dog:5]\nSteps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1, Size: 1024x768, First pass size: 0x0, "
            "Denoising strength: 0.7, Version: v1.5.1-12-gabcdef0")
    assert parse_generation_parameters(text) == {
        **DEFAULTS,
        "Steps": "20", "Sampler": "DDIM", "CFG scale": "7", "Seed": "1", "Denoising strength": "0.7",
        "First pass size-1": "0", "First pass size-2": "0", "Version": "v1.5.1-12-gabcdef0",
        # the first pass was the generated size (about 512x512, rounded up to 64); "Size" was the hires size
        "Size-1": 640, "Size-2": 448, "Hires resize-1": 1024, "Hires resize-2": 768,
        "Prompt": "a [cat:dog:5]", "Negative prompt": "", "Emphasis": "Original",
        "Old prompt editing timelines": True, "Pad conds v0": True, "Downcast alphas_cumprod": True,
    }


def test_versions_around_the_backwards_compatibility_steps():
    def flags(version):
        result = parse_generation_parameters(f"x\nSteps: 1, Sampler: Euler, Seed: 1, Refiner: m, Version: {version}")
        return {key for key in ("Downcast alphas_cumprod", "Pad conds v0") if key in result}, \
            result["Refiner switch by sampling steps"]

    assert flags("v1.7.0-224-gabc") == ({"Downcast alphas_cumprod"}, True)
    assert flags("v1.7.0-225-gabc") == (set(), True)
    assert flags("v1.8.0-RC") == (set(), True)
    assert flags("v1.8.0") == (set(), False)
    assert flags("f2.0.1v1.10.1-previous-600-g1234") == (set(), False)  # not a version: nothing applied


def test_plain_text_hypernet_and_fp8():
    assert parse_generation_parameters("just a prompt") == {**DEFAULTS, "Prompt": "just a prompt",
                                                            "Negative prompt": ""}
    assert parse_generation_parameters("") == {**DEFAULTS, "Prompt": "", "Negative prompt": ""}
    result = parse_generation_parameters("cat\nSteps: 4, Seed: 3, Hypernet: anime, FP8 weight: Enable for SDXL")
    assert result["Prompt"] == "cat<hypernet:anime:1.0>"
    assert result["Cache FP16 weight for LoRA"] is False and result["FP8 weight"] == "Enable for SDXL"
    result = parse_generation_parameters('cat\nSteps: 4, Seed: 3, Hires resize: 1024x1024, Hires prompt: "a, b"')
    assert (result["Hires resize-1"], result["Hires resize-2"], result["Hires prompt"]) == ("1024", "1024", "a, b")
    assert "Emphasis" not in result


def test_our_own_infotext_gets_no_backwards_compatibility_options():
    """Our images are pasted into A1111 as they were made: no option for infotexts of old A1111 versions."""
    from webui.core.generation_info import generation_params
    from webui.core.infotext import build_infotext
    from webui.core.requests import GenerationRequest

    request = GenerationRequest(prompt="a [cat:dog:0.5]", sampler_name="DDIM", seed=5)
    params = generation_params(request, seed=5, sampler="DDIM", schedule="Automatic", model_name="m",
                               model_hash="0123456789")
    parsed = parse_generation_parameters(build_infotext(request.prompt, "", params))
    assert parsed["Version"].startswith("sd-studio ")
    for option in ("Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod"):
        assert option not in parsed
