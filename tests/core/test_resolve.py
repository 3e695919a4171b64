"""A request is resolved once: styles, sampler and schedule, every image's seeds, and the parsed prompt.

Random seeds are counted through the injected seed source (a `random.Random` that counts its draws); parsing is
counted with a spy on `webui.core.prompt_parser.parse_full`, the one function that takes a prompt apart.
"""
from __future__ import annotations

import dataclasses
import random

import pytest

from webui.core import prompt_parser
from webui.core.errors import SamplerError, ValidationError
from webui.core.prompt_matrix import PromptMatrixOptions, expand_prompt_matrix
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.resolve import ResolvedRequest, resolve_request
from webui.core.seeds import MAX_SEED
from webui.core.styles import Style
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import XyzOptions, expand_xyz

BASE = GenerationRequest(prompt="a cat", steps=4, width=64, height=64, seed=100, subseed=7)


class CountingSeeds(random.Random):
    """A seeded source that counts how many random seeds were drawn from it."""

    def __init__(self) -> None:
        super().__init__(1)
        self.draws = 0

    def randrange(self, *args, **kwargs) -> int:  # type: ignore[override]
        self.draws += 1
        return super().randrange(*args, **kwargs)


def resolve(request: GenerationRequest, seeds: random.Random | None = None, **styles: Style) -> ResolvedRequest:
    return resolve_request(request, styles=styles, seeds=seeds or CountingSeeds())


def test_every_image_of_every_batch_gets_its_seed_from_one_draw():
    seeds = CountingSeeds()
    resolved = resolve(dataclasses.replace(BASE, seed=-1, subseed=-1, batch_size=2, n_iter=3), seeds)
    assert seeds.draws == 2  # the seed and the variation seed, once each for the whole job
    first, subfirst = resolved.request.seed, resolved.request.subseed
    assert resolved.seeds == tuple((first + i) % (MAX_SEED + 1) for i in range(6))
    assert resolved.subseeds == tuple((subfirst + i) % (MAX_SEED + 1) for i in range(6))
    assert resolved.batch(1) == (resolved.seeds[2:4], resolved.subseeds[2:4])


def test_concrete_seeds_draw_nothing_and_wrap_like_uint32():
    seeds = CountingSeeds()
    resolved = resolve(dataclasses.replace(BASE, seed=MAX_SEED, batch_size=3), seeds)
    assert seeds.draws == 0
    assert resolved.seeds == (MAX_SEED, 0, 1) and resolved.subseeds == (7, 8, 9)


def test_styles_are_merged_and_cleared_and_unknown_ones_refused():
    style = Style("moody", "{prompt}, dark", "bright")
    resolved = resolve(dataclasses.replace(BASE, styles=("moody",), negative_prompt="ugly"), moody=style)
    assert (resolved.request.prompt, resolved.request.negative_prompt) == ("a cat, dark", "ugly, bright")
    assert resolved.request.styles == ()
    assert resolved.prompts.positive.original == "a cat, dark"
    with pytest.raises(ValidationError, match="Unknown style.*nope.*styles.csv"):
        resolve(dataclasses.replace(BASE, styles=("nope",)))


def test_legacy_sampler_names_are_split_and_the_schedule_made_concrete():
    resolved = resolve(dataclasses.replace(BASE, sampler_name="DPM++ 2M Karras"))
    assert (resolved.request.sampler_name, resolved.request.scheduler) == ("DPM++ 2M", "Karras")
    assert (resolved.sampler, resolved.schedule) == ("DPM++ 2M", "Karras")
    automatic = resolve(dataclasses.replace(BASE, sampler_name="k_euler_a"))
    assert (automatic.sampler, automatic.schedule) == ("Euler a", "Uniform")
    with pytest.raises(SamplerError):
        resolve(dataclasses.replace(BASE, sampler_name="Nope"))
    with pytest.raises(ValidationError):
        resolve(dataclasses.replace(BASE, steps=0))


def test_the_prompt_is_parsed_once_with_its_extra_networks_separated(parses):
    request = dataclasses.replace(BASE, prompt="a (cat:1.2) <lora:ink:0.5:0.25> [day:night:2]",
                                  negative_prompt="blur <lora:ink:1>", batch_size=2, n_iter=2)
    resolved = resolve(request)
    assert parses == [request.prompt]  # one parse for the job's four images
    (call,) = resolved.extra_networks
    assert (call.kind, call.name, call.te_weight, call.unet_weight) == ("lora", "ink", 0.5, 0.25)
    schedule = resolved.prompts.positive.subprompts[0].schedule
    assert [entry.text for entry in schedule] == ["a (cat:1.2)  day", "a (cat:1.2)  night"]
    assert ("cat", 1.2) in schedule[0].pieces
    # A1111 keeps tags in the negative prompt as text.
    assert resolved.prompts.negative.schedule[0].text == "blur <lora:ink:1>"
    assert resolved.hires_prompts is None and not resolved.hires


def test_hires_prompts_are_scheduled_for_the_hires_steps_without_a_second_parse(parses):
    request = dataclasses.replace(BASE, prompt="<lora:ink:1>[day:night:0.5]", negative_prompt="[a:b:0.5]",
                                  enable_hr=True, hr_second_pass_steps=10)
    resolved = resolve(request)
    assert parses == [request.prompt]
    hires = resolved.hires_prompts
    assert hires is not None and hires.steps == 10
    assert [e.end_step for e in hires.positive.subprompts[0].schedule] == [5, 10]
    assert [e.end_step for e in resolved.prompts.positive.subprompts[0].schedule] == [2, 4]
    assert [e.end_step for e in hires.negative.schedule] == [5, 10]
    assert hires.positive.extra_networks == resolved.extra_networks
    assert hires.positive == prompt_parser.parse_full(request.prompt, 10)  # same as parsing for 10 steps
    picture = type("Picture", (), {"size": (64, 64)})()  # core reads only an image's size
    assert resolve(dataclasses.replace(request, img2img=Img2ImgInputs((picture,)))).hires_prompts is None


def test_xyz_resolves_random_seeds_once_for_the_whole_plot():
    seeds = CountingSeeds()
    base = dataclasses.replace(BASE, seed=-1, subseed=-1)
    plan = expand_xyz(base, [AxisInput("Steps", "1-3"), AxisInput("CFG Scale", "5, 7")], XyzOptions(), seeds)
    assert seeds.draws == 2
    resolved = [resolve(cell.request, seeds) for cell in plan.cells]
    assert seeds.draws == 2  # the cells draw nothing more
    assert len({r.request.seed for r in resolved}) == 1 and len({r.request.subseed for r in resolved}) == 1


def test_xyz_seed_axis_gives_each_column_its_seed_and_keep_random_draws_per_cell():
    seeds = CountingSeeds()
    plan = expand_xyz(dataclasses.replace(BASE, seed=-1), [AxisInput("Seed", "-1, 5"), AxisInput("Steps", "1, 2")],
                      XyzOptions(), seeds)
    assert seeds.draws == 2  # the axis's -1 and the base seed (the variation seed is concrete)
    columns = [[cell.request.seed for cell in plan.cells if cell.position[0] == x] for x in (0, 1)]
    assert len(set(columns[0])) == 1 and columns[1] == [5, 5] and columns[0][0] >= 0
    keep = CountingSeeds()
    kept = expand_xyz(dataclasses.replace(BASE, seed=-1), [AxisInput("Steps", "1, 2")],
                      XyzOptions(keep_random_seeds=True), keep)
    assert keep.draws == 0 and all(cell.request.seed == -1 for cell in kept.cells)
    cells = [resolve(cell.request, keep) for cell in kept.cells]
    assert keep.draws == 2  # "Keep -1 for seeds": each cell is its own job with its own random seed
    assert cells[0].request.seed >= 0 and cells[1].request.seed >= 0


def test_prompt_matrix_resolves_random_seeds_once(parses):
    seeds = CountingSeeds()
    base = dataclasses.replace(BASE, prompt="a cat|red|big", seed=-1, subseed=-1)
    plan = expand_prompt_matrix(base, PromptMatrixOptions(different_seeds=True), seeds)
    assert seeds.draws == 2
    resolved = [resolve(request, seeds) for request in plan.requests]
    assert seeds.draws == 2
    first = resolved[0].request.seed
    assert [r.request.seed for r in resolved] == [(first + i) % (MAX_SEED + 1) for i in range(4)]
    assert parses == [request.prompt for request in plan.requests]  # one parse per image


def test_resolved_request_is_frozen():
    resolved = resolve(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.seeds = ()  # type: ignore[misc]
