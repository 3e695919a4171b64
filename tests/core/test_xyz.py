"""X/Y/Z plot, pure part: A1111's value syntax, axis types, expansion, seeds, run order and the grid infotext."""
from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webui.core.errors import ValidationError
from webui.core.infotext import build_infotext, parse_infotext
from webui.core.requests import GenerationRequest
from webui.core.xyz_axes import AxisInput, parse_axis
from webui.core.xyz_axis_types import AXIS_TYPES, axis_type, checkpoint_label
from webui.core.xyz_plan import XyzOptions, expand_xyz
from webui.core.xyz_values import join_csv, parse_float_values, parse_int_values, split_csv

BASE = GenerationRequest(prompt="a cat, <lora:mylora-000002:1>, forest", negative_prompt="blurry", seed=100,
                         steps=2, width=32, height=32)


@pytest.mark.parametrize(("text", "expected"), [
    ("1-5", [1, 2, 3, 4, 5]),
    ("1-10 (+2)", [1, 3, 5, 7, 9]),
    ("1-10(+3)", [1, 4, 7, 10]),
    ("1-10 (2)", [1, 3, 5, 7, 9]),
    ("10-1 (-3)", [10, 7, 4, 1]),
    ("5-1", [5, 4, 3, 2, 1]),
    ("1-10 [5]", [1, 3, 5, 7, 10]),
    ("0-100 [3]", [0, 50, 100]),
    ("7 - 7", [7]),
    ("-1", [-1]),
    ("-5--3", [-5, -4, -3]),
    ("1, 3-4, 20", [1, 3, 4, 20]),
    ("1,,2, ", [1, 2]),
    ("12.0", [12]),
])
def test_int_range_syntax(text, expected):
    assert parse_int_values(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("0.5-1 (+0.25)", [0.5, 0.75, 1.0]),
    ("0.5-1 (+0.1)", [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
    ("0-1 [5]", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("1-2", [1.0, 2.0]),
    ("7.5, 3, .5", [7.5, 3.0, 0.5]),
    ("1-0 (-0.5)", [1.0, 0.5, 0.0]),
    ("1e-3", [0.001]),
])
def test_float_range_syntax(text, expected):
    assert parse_float_values(text) == expected


@pytest.mark.parametrize("text", ["abc", "1-10 (+0)", "1-10 (-1)", "1.5", "1-100000"])
def test_bad_int_values_are_readable_errors(text):
    with pytest.raises(ValidationError):
        parse_int_values(text)


def test_csv_quoting_keeps_commas_inside_quotes():
    assert split_csv('"frase 1, frase 2","frase 3, fase 4","frase 5, frase 6"') == [
        "frase 1, frase 2", "frase 3, fase 4", "frase 5, frase 6"]
    assert split_csv('a, "b, c", d') == ["a", "b, c", "d"]
    assert split_csv("a\nb") == ["a", "b"]
    assert join_csv(["a, b", "c"]) == '"a, b",c'


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1), max_size=5))
def test_join_then_split_round_trips(items):
    items = [item.strip() for item in items if item.strip()]
    assert split_csv(join_csv(items)) == items


def test_prompt_sr_with_quotes_replaces_in_both_prompts():
    base = GenerationRequest(prompt="photo, red hair, smile", negative_prompt="red hair, ugly", seed=1)
    plan = expand_xyz(base, [AxisInput("Prompt S/R", '"red hair, smile","blue hair, frown"')])
    assert [cell.request.prompt for cell in plan.cells] == ["photo, red hair, smile", "photo, blue hair, frown"]
    assert plan.axes[0].legends() == ("red hair, smile", "blue hair, frown")
    plan = expand_xyz(base, [AxisInput("Prompt S/R", "red hair, green hair")])
    assert plan.cells[1].request.negative_prompt == "green hair, ugly"


def test_prompt_sr_over_lora_weights_and_epoch_files():
    weights = expand_xyz(GenerationRequest(prompt="girl <lora:name:0.5>"),
                         [AxisInput("Prompt S/R", "<lora:name:0.5>, <lora:name:1>")])
    assert [c.request.prompt for c in weights.cells] == ["girl <lora:name:0.5>", "girl <lora:name:1>"]
    # File names with dashes are text, never ranges.
    epochs = expand_xyz(BASE, [AxisInput("Prompt S/R", "mylora-000002, mylora-000004, mylora-000006")])
    assert [c.request.prompt for c in epochs.cells] == [
        "a cat, <lora:mylora-000002:1>, forest", "a cat, <lora:mylora-000004:1>, forest",
        "a cat, <lora:mylora-000006:1>, forest"]


def test_prompt_sr_must_find_its_first_value():
    with pytest.raises(ValidationError, match="did not find 'dog'"):
        expand_xyz(BASE, [AxisInput("Prompt S/R", "dog, wolf")])


def test_prompt_order_permutes_terms_in_place():
    base = GenerationRequest(prompt="a cat, forest, night", seed=1)
    plan = expand_xyz(base, [AxisInput("Prompt order", "cat, night")])
    assert [c.request.prompt for c in plan.cells] == ["a cat, forest, night", "a night, forest, cat"]
    assert plan.axes[0].legends() == ("cat, night", "night, cat")


def test_each_axis_type_sets_its_field():
    cases = {
        "Seed": ("5", "seed", 5), "Var. seed": ("6", "subseed", 6), "Var. strength": ("0.3", "subseed_strength", 0.3),
        "Steps": ("3", "steps", 3), "Hires steps": ("4", "hr_second_pass_steps", 4),
        "CFG Scale": ("4.5", "cfg_scale", 4.5),
        "Sampler": ("DDIM", "sampler_name", "DDIM"), "Schedule type": ("Karras", "scheduler", "Karras"),
        "Checkpoint name": ("b.safetensors", "checkpoint", "b.safetensors"), "VAE": ("None", "vae", "None"),
        "Clip skip": ("2", "clip_skip", 2), "Denoising": ("0.4", "denoising_strength", 0.4),
        "Hires upscaler": ("Lanczos", "hr_upscaler", "Lanczos"), "Styles": ("a, b", "styles", ("a",)),
    }
    for label, (values, name, expected) in cases.items():
        plan = expand_xyz(BASE, [AxisInput(label, values)])
        assert getattr(plan.cells[0].request, name) == expected, label
    size = expand_xyz(BASE, [AxisInput("Size", "64x48, 40")])
    assert [(c.request.width, c.request.height) for c in size.cells] == [(64, 48), (40, 40)]
    assert {axis.label for axis in AXIS_TYPES} >= set(cases) | {"Nothing", "Prompt S/R", "Prompt order", "Size"}


def test_styles_axis_adds_comma_separated_styles():
    plan = expand_xyz(dataclasses.replace(BASE, styles=("base",)), [AxisInput("Styles", picks=("a,b", "c"))])
    assert [c.request.styles for c in plan.cells] == [("base", "a", "b"), ("base", "c")]


def test_picks_win_over_text_and_unknown_axis_is_an_error():
    axis = parse_axis(AxisInput("Sampler", "Euler", ("DDIM", "Euler a")))
    assert axis.values == ("DDIM", "Euler a") and axis.text == "DDIM,Euler a"
    with pytest.raises(ValidationError, match="Unknown X/Y/Z axis type"):
        axis_type("Bogus")
    with pytest.raises(ValidationError, match="Y axis \\(Steps\\) has no values"):
        expand_xyz(BASE, [AxisInput("Seed", "1"), AxisInput("Steps", " ")])
    with pytest.raises(ValidationError, match="X axis \\(Steps\\)"):
        expand_xyz(BASE, [AxisInput("Steps", "two")])


def test_2x3x2_expansion_order_and_positions():
    plan = expand_xyz(BASE, [AxisInput("Steps", "1-2"), AxisInput("CFG Scale", "3-5"), AxisInput("Seed", "7, 8")])
    assert plan.shape == (2, 3, 2) and len(plan.cells) == 12
    assert [cell.position for cell in plan.cells[:3]] == [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    last = plan.cells[-1].request
    assert (last.steps, last.cfg_scale, last.seed) == (2, 5.0, 8)
    assert BASE.steps == 2 and BASE.seed == 100  # the base request is never changed


def test_keep_minus_one_off_fixes_every_seed_once():
    base = dataclasses.replace(BASE, seed=-1)
    plan = expand_xyz(base, [AxisInput("Steps", "1, 2"), AxisInput("Seed", "-1, -1, 5")], rng=random.Random(3))
    seeds = {cell.position: cell.request.seed for cell in plan.cells}
    assert all(seed >= 0 for seed in seeds.values())
    assert seeds[(0, 0, 0)] == seeds[(1, 0, 0)] and seeds[(0, 2, 0)] == 5
    assert seeds[(0, 0, 0)] != seeds[(0, 1, 0)]  # two -1 values: two different fixed seeds
    assert plan.grid_params()["Fixed Y Values"] == ", ".join(str(seeds[(0, y, 0)]) for y in range(3))
    no_seed_axis = expand_xyz(base, [AxisInput("Steps", "1, 2")])
    assert len({cell.request.seed for cell in no_seed_axis.cells}) == 1
    assert no_seed_axis.cells[0].request.seed >= 0


def test_keep_minus_one_on_leaves_random_seeds():
    base = dataclasses.replace(BASE, seed=-1)
    plan = expand_xyz(base, [AxisInput("Seed", "-1, 3")], XyzOptions(keep_random_seeds=True))
    assert [cell.request.seed for cell in plan.cells] == [-1, 3]
    assert "Fixed X Values" not in plan.grid_params()


def test_vary_seeds_offsets_by_grid_index():
    axes = [AxisInput("Steps", "1, 2"), AxisInput("CFG Scale", "3, 4"), AxisInput("Clip skip", "1, 2")]
    plan = expand_xyz(BASE, axes, XyzOptions(vary_seeds=(True, False, True)))
    seeds = {cell.position: cell.request.seed for cell in plan.cells}
    assert seeds[(0, 0, 0)] == 100 and seeds[(1, 0, 0)] == 101
    assert seeds[(0, 1, 0)] == 100  # Y not varied
    assert seeds[(1, 1, 1)] == 100 + 1 + 2  # Z stride = len(X) because X varies, Y does not


def test_run_order_groups_checkpoints_and_ends_on_the_current_one():
    plan = expand_xyz(BASE, [AxisInput("Checkpoint name", picks=("a", "cur", "b")), AxisInput("Steps", "1-3")])
    order = [cell.request.checkpoint for cell in plan.run_order(current_checkpoint="cur")]
    assert order == ["a"] * 3 + ["b"] * 3 + ["cur"] * 3
    switches = sum(1 for before, after in zip(order, order[1:], strict=False) if before != after)
    assert switches == 2
    assert sorted(plan.run_order(), key=plan.cells.index) == list(plan.cells)


def test_run_order_alternates_vaes_within_checkpoints():
    plan = expand_xyz(BASE, [AxisInput("VAE", picks=("v1", "v2")), AxisInput("Checkpoint name", picks=("a", "b"))])
    order = [(c.request.checkpoint, c.request.vae) for c in plan.run_order("b", "v2")]
    assert order == [("a", "v2"), ("a", "v1"), ("b", "v1"), ("b", "v2")]


def test_grid_infotext_records_script_and_axes_and_parses_back():
    plan = expand_xyz(BASE, [AxisInput("Prompt S/R", '"<lora:mylora-000002:1>","<lora:mylora-000004:1>"'),
                             AxisInput("Sampler", picks=("Euler a", "DPM++ 2M"))])
    cell_text = build_infotext(BASE.prompt, "blurry", {"Steps": 2, "Sampler": "Euler a", "Seed": 100,
                                                       "Size": (32, 32), "Version": "x"})
    grid_text = plan.grid_infotext(cell_text)
    assert grid_text.splitlines()[-1].endswith("Version: x")
    parsed = parse_infotext(grid_text)
    assert parsed.prompt == BASE.prompt and parsed.negative_prompt == "blurry"
    assert parsed.params["Script"] == "X/Y/Z plot"
    assert parsed.params["X Type"] == "Prompt S/R"
    assert parsed.params["X Values"] == '"<lora:mylora-000002:1>","<lora:mylora-000004:1>"'
    assert split_csv(parsed.params["X Values"]) == ["<lora:mylora-000002:1>", "<lora:mylora-000004:1>"]
    assert parsed.params["Y Type"] == "Sampler" and parsed.params["Y Values"] == "Euler a,DPM++ 2M"
    assert "Z Type" not in parsed.params
    assert parsed.to_generation_fields()["steps"] == 2


def test_checkpoint_legend_drops_folder_extension_and_hash():
    assert checkpoint_label("sub/model-v1.safetensors [1a2b3c4d5e]") == "model-v1"
    plan = expand_xyz(BASE, [AxisInput("Checkpoint name", picks=("tiny.ckpt",)), AxisInput("Steps", "2")])
    assert plan.axes[0].legends() == ("tiny",) and plan.axes[1].legends() == ("Steps: 2",)
    assert plan.axes[2].legends() == ("",)
