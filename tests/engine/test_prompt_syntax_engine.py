"""A1111 prompt syntax and seed options reaching the image: weights, editing, BREAK, variation seeds."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest
from webui.core.resolve import PassPrompts, resolve_request
from webui.engine.generation.conditioning import plan_conditioning

BASE = GenerationRequest(prompt="a red circle", steps=4, width=32, height=32, seed=11, cfg_scale=6.0,
                         sampler_name="Euler", save_images=False)


def prompts(prompt: str, negative: str = "", steps: int = 4) -> PassPrompts:
    """The parsed prompts of one pass, as a resolved request carries them to the engine."""
    request = dataclasses.replace(BASE, prompt=prompt, negative_prompt=negative, steps=steps)
    return resolve_request(request, styles={}, seeds=random.Random(0)).prompts


def image(services, **fields) -> np.ndarray:
    return np.asarray(services.generation.txt2img(dataclasses.replace(BASE, **fields)).images[0].image).astype(int)


def test_weighted_word_changes_the_image_and_weight_one_does_not(sd1_services):
    plain = image(sd1_services)
    assert np.array_equal(plain, image(sd1_services, prompt="a (red:1.0) circle"))
    assert not np.array_equal(plain, image(sd1_services, prompt="a (red:1.6) circle"))
    assert not np.array_equal(plain, image(sd1_services, prompt="a [red] circle"))


def test_prompt_editing_limits(sd1_services):
    red = image(sd1_services, prompt="a red circle")
    blue = image(sd1_services, prompt="a blue circle")
    assert np.array_equal(red, image(sd1_services, prompt="a [red:blue:10] circle"))  # switch after the last step
    assert np.array_equal(blue, image(sd1_services, prompt="a [red:blue:0] circle"))  # never red
    mixed = image(sd1_services, prompt="a [red:blue:0.5] circle")
    assert not np.array_equal(mixed, red) and not np.array_equal(mixed, blue)


def test_conditioning_switches_at_the_scheduled_step(sd1_services):
    pipe = sd1_services.runtime.manager.require().pipeline
    plan = plan_conditioning(pipe, prompts("a [red:blue:2] circle"), 1)
    red = plan_conditioning(pipe, prompts("a red circle"), 1).at(0)[0].embeds
    blue = plan_conditioning(pipe, prompts("a blue circle"), 1).at(0)[0].embeds
    assert [torch.equal(plan.at(s)[0].embeds, red) for s in range(4)] == [True, True, True, False]
    assert torch.equal(plan.at(3)[0].embeds, blue)
    seen: list[torch.Tensor] = []
    handle = pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"][1].clone()), with_kwargs=True)
    try:
        sd1_services.generation.txt2img(dataclasses.replace(BASE, prompt="a [red:blue:2] circle"))
    finally:
        handle.remove()
    assert len(seen) == 4
    assert [torch.equal(e, red[0]) for e in seen] == [True, True, True, False]
    assert torch.equal(seen[3], blue[0])


def test_alternation_and_break_and_long_prompts_generate(sd1_services):
    for prompt in ("a [red|blue] circle", "a red circle BREAK blue background", " ".join(["red circle"] * 60),
                   "a red circle AND a blue square:0.5", "((unbalanced (brackets", "<lora:missing:1> a cat"):
        result = sd1_services.generation.txt2img(dataclasses.replace(BASE, prompt=prompt))
        assert len(result.images) == 1
        assert parse_infotext(result.infotexts[0]).prompt == prompt


def test_and_is_composable_diffusion(sd1_services):
    plain = image(sd1_services)
    # uncond + 1 * (c - uncond) + 0 * (other - uncond) is exactly the plain prompt's prediction.
    assert np.array_equal(plain, image(sd1_services, prompt="a red circle AND a blue square:0"))
    halves = image(sd1_services, prompt="a red circle:0.5 AND a red circle:0.5")
    assert np.abs(plain - halves).max() <= 1
    both = image(sd1_services, prompt="a red circle AND a blue square")
    assert not np.array_equal(plain, both)
    batch = sd1_services.generation.txt2img(dataclasses.replace(BASE, prompt="a red circle AND a blue square",
                                                                batch_size=2))
    assert np.abs(np.asarray(batch.images[0].image).astype(int) - both).max() <= 1  # batched matmuls round apart
    assert type(sd1_services.runtime.manager.require().pipeline.unet).__name__ == "UNet2DConditionModel"


def test_and_with_prompt_editing_per_part(sd1_services):
    edited = image(sd1_services, prompt="a [red:blue:10] circle AND a blue square:0")
    assert np.array_equal(edited, image(sd1_services))


def test_long_negative_is_padded_to_the_prompt_chunks(sd1_services):
    pipe = sd1_services.runtime.manager.require().pipeline
    plan = plan_conditioning(pipe, prompts(" ".join(["red"] * 100), "blurry"), 1)
    cond, uncond = plan.at(0)
    assert cond.chunks == uncond.chunks == 2


def test_variation_seed(sd1_services):
    plain = image(sd1_services)
    assert np.array_equal(plain, image(sd1_services, subseed=99, subseed_strength=0.0))
    varied = sd1_services.generation.txt2img(dataclasses.replace(BASE, subseed=99, subseed_strength=0.3))
    assert not np.array_equal(plain, np.asarray(varied.images[0].image).astype(int))
    fields = parse_infotext(varied.infotexts[0]).to_generation_fields()
    assert fields["subseed"] == 99 and fields["subseed_strength"] == pytest.approx(0.3)
    full = image(sd1_services, subseed=99, subseed_strength=1.0)
    other_seed = image(sd1_services, seed=99)
    assert np.abs(full - other_seed).max() <= 2  # strength 1 is the variation seed's own noise


def test_resize_seed_from(sd1_services):
    plain = image(sd1_services)
    assert np.array_equal(plain, image(sd1_services, seed_resize_from_w=32, seed_resize_from_h=32))
    big = sd1_services.generation.txt2img(dataclasses.replace(BASE, width=64, height=64, seed_resize_from_w=32,
                                                   seed_resize_from_h=32))
    assert "Seed resize from: 32x32" in big.infotexts[0]
    assert big.images[0].image.size == (64, 64)
