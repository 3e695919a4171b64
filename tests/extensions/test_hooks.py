"""Extension hooks around real generations, and isolation of the broken ones (services level)."""
from __future__ import annotations

import dataclasses

from PIL import Image

from webui.core.extension_args import ExtensionArgs
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest

BASE = GenerationRequest(prompt="a red circle", steps=2, width=32, height=32, seed=11, save_images=True)


def _record(services, name):
    return next(info for info in services.extensions.extensions() if info.name == name)


def test_import_error_is_recorded_and_the_rest_load(extension_services):
    broken = _record(extension_services, "broken-import")
    assert broken.status == "failed (import)"
    assert "ModuleNotFoundError" in broken.error and "not_a_module_that_exists_anywhere" in broken.error
    assert _record(extension_services, "sample-ext").status == "active"
    order = [info.name for info in extension_services.extensions.extensions()]
    assert order.index("broken-hook") < order.index("sample-ext")  # sample-ext says after = ["broken-hook"]


def test_hooks_change_prompt_image_and_infotext_and_a_failing_hook_is_isolated(extension_services):
    result = extension_services.generation.txt2img(dataclasses.replace(BASE, batch_size=2))
    assert len(result.images) == 2
    # before_generation appended the suffix (its setting's default) before resolving: the infotext records it
    info = parse_infotext(result.images[0].infotext)
    assert info.prompt == "a red circle, sample suffix"
    assert info.params["Sample ext"] == "image 0"
    assert parse_infotext(result.images[1].infotext).params["Sample ext"] == "image 1"
    # after_image marked the pixel, in the returned image and in the saved file
    assert result.images[0].image.getpixel((0, 0)) == (0, 255, 0)
    with Image.open(result.images[0].path) as saved:
        assert saved.convert("RGB").getpixel((0, 0)) == (0, 255, 0)
    # broken-hook raised in after_image: the generation completed, said so, and the extension is off
    assert any("broken-hook" in w and "disabled for this session" in w for w in result.warnings)
    broken = _record(extension_services, "broken-hook")
    assert broken.status == "failed (after_image hook)" and "exploded on purpose" in broken.error
    again = extension_services.generation.txt2img(BASE)
    assert not any("broken-hook" in w for w in again.warnings)
    # on_step saw every denoising step of both runs (2 steps each); its count is what the extension's route reports
    status = extension_services.runtime.extensions.record("sample-ext").context.registrations.routes[0].fn
    assert status()["steps_seen"] >= 4


def test_request_args_turn_the_hook_off_and_fields_reach_the_infotext(extension_services):
    args = ExtensionArgs("sample-ext", (False,), (("sample_ext_note", "hi"),))
    off = dataclasses.replace(BASE, extension_args=(args,))
    result = extension_services.generation.txt2img(off)
    info = parse_infotext(result.images[0].infotext)
    assert info.prompt == "a red circle"
    assert info.params["Sample note"] == "hi"


def test_split_requests_run_in_one_job_each_with_its_own_prompt(extension_services):
    registry = extension_services.runtime.extensions
    context = registry.record("sample-ext").context
    seen = []

    def split(request):
        seen.append(request.seed)
        return [dataclasses.replace(request, prompt=f"{request.prompt} #{i}", batch_size=1) for i in range(2)]

    context.registrations.hooks["before_generation"].append(split)
    try:
        result = extension_services.generation.txt2img(dataclasses.replace(BASE, seed=-1))
    finally:
        context.registrations.hooks["before_generation"].remove(split)
    assert seen and seen[0] != -1  # hooks see a drawn seed
    prompts = [parse_infotext(image.infotext).prompt for image in result.images]
    assert prompts == ["a red circle, sample suffix #0", "a red circle, sample suffix #1"]
    assert [parse_infotext(image.infotext).params["Sample ext"] for image in result.images] == ["image 0", "image 1"]
