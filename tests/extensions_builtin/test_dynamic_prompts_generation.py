"""Dynamic prompts loaded by the real services (as the app loads it) on the tiny SD1 model: each image's prompt
and infotext, seeds, combinatorial counts, options from request args and from the settings."""
from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import make_data_dir, make_settings
from webui.core.errors import ValidationError
from webui.core.extension_args import ExtensionArgs
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest

NAME = "dynamic-prompts"
BASE = GenerationRequest(prompt="a {red|green|blue|pink} __animal__ [cat|dog] <lora:missing:1>",
                         negative_prompt="{ugly|blurry}", steps=1, width=32, height=32, seed=40)


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("dp-data"), tiny_checkpoints, ("sd1",))
    (data_dir / "wildcards").mkdir()
    (data_dir / "wildcards" / "animal.txt").write_text("otter\nheron\nlynx\n", encoding="utf-8")
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
    assert services.runtime.extensions.record(NAME).active
    yield services
    services.runtime.executor.shutdown()


def _args(*values) -> tuple[ExtensionArgs, ...]:
    return (ExtensionArgs(NAME, tuple(values)),)


def _prompts(result) -> list[tuple[str, str]]:
    parsed = [parse_infotext(text) for text in result.infotexts]
    return [(p.prompt, p.negative_prompt) for p in parsed]


def test_seed_per_image_gives_each_image_the_prompt_its_seed_draws(services):
    result = services.generation.txt2img(dataclasses.replace(BASE, batch_size=2, n_iter=2))
    assert result.seeds == [40, 41, 42, 43]
    prompts = _prompts(result)
    assert len(set(prompts)) > 1
    for prompt, negative in prompts:
        colour, animal = prompt.split()[1:3]
        assert colour in {"red", "green", "blue", "pink"} and animal in {"otter", "heron", "lynx"}
        assert prompt.endswith(" [cat|dog] <lora:missing:1>") and negative in {"ugly", "blurry"}
    params = parse_infotext(result.infotexts[0]).params
    assert params["Template"] == BASE.prompt and params["Negative Template"] == BASE.negative_prompt
    alone = services.generation.txt2img(dataclasses.replace(BASE, seed=42))
    assert _prompts(alone) == [prompts[2]] and alone.seeds == [42]
    files = sorted((services.settings.paths.outputs_dir / "txt2img-images").rglob("*.png"))
    assert len(files) == 5


def test_fixed_seed_gives_every_image_one_variant(services):
    result = services.generation.txt2img(dataclasses.replace(BASE, batch_size=3, extension_args=_args(
        True, False, 0, True)))
    assert len(set(_prompts(result))) == 1 and result.seeds == [40, 41, 42]


def test_combinatorial_makes_every_combination(services):
    request = dataclasses.replace(BASE, prompt="{red|blue} {circle|square} __animal__", negative_prompt="",
                                  extension_args=_args(True, True, 0, False))
    result = services.generation.txt2img(request)
    assert len(result.images) == 2 * 2 * 3
    assert len({p for p, _ in _prompts(result)}) == 12
    assert result.seeds == list(range(40, 52))
    limited = services.generation.txt2img(dataclasses.replace(request, extension_args=(
        ExtensionArgs(NAME, fields=(("enabled", True), ("combinatorial", True), ("max_generations", 3),
                                    ("fixed_seed", True))),)))
    assert len(limited.images) == 3 and limited.seeds == [40, 40, 40]


def test_disabled_by_args_or_settings_leaves_the_prompt(services):
    off = services.generation.txt2img(dataclasses.replace(BASE, extension_args=_args(False)))
    assert _prompts(off) == [(BASE.prompt, BASE.negative_prompt)]
    assert "Template" not in parse_infotext(off.infotexts[0]).params
    services.options.update({"dynamic_prompts_enabled": False}, save=False)
    try:
        assert _prompts(services.generation.txt2img(BASE)) == [(BASE.prompt, BASE.negative_prompt)]
        on = services.generation.txt2img(dataclasses.replace(BASE, extension_args=_args(True)))
        assert _prompts(on)[0][0] != BASE.prompt
    finally:
        services.options.update({"dynamic_prompts_enabled": True}, save=False)


def test_a_bad_template_fails_the_request_with_the_reason_and_the_extension_stays_on(services):
    with pytest.raises(ValidationError, match="could not read the prompt 'a {red|blue'"):
        services.generation.txt2img(dataclasses.replace(BASE, prompt="a {red|blue", negative_prompt=""))
    assert services.runtime.extensions.record(NAME).active
    off = services.generation.txt2img(dataclasses.replace(BASE, prompt="a {red|blue", extension_args=_args(False)))
    assert _prompts(off)[0][0] == "a {red|blue"


def test_img2img_prompts_are_expanded_too_and_go_to_the_img2img_folder(services):
    from PIL import Image

    from webui.core.requests import Img2ImgInputs

    picture = Image.new("RGB", (32, 32), "red")
    request = dataclasses.replace(BASE, batch_size=2, img2img=Img2ImgInputs((picture,)), denoising_strength=0.5)
    result = services.generation.txt2img(request)
    prompts = _prompts(result)
    assert len(prompts) == 2 and all(p.split()[2] in {"otter", "heron", "lynx"} for p, _ in prompts)
    assert all(image.path is not None and "img2img-images" in image.path.parts for image in result.images)
    assert _prompts(services.generation.txt2img(dataclasses.replace(request, batch_size=1, seed=41)))[0] == \
        prompts[1]
