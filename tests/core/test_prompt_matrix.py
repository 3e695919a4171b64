"""Prompt matrix, pure part: combinations, options, grid shape, legends and the grid infotext."""
from __future__ import annotations

import pytest

from webui.core.errors import ValidationError
from webui.core.infotext import build_infotext, parse_infotext
from webui.core.prompt_matrix import PromptMatrixOptions, expand_prompt_matrix, split_parts
from webui.core.requests import GenerationRequest

BASE = GenerationRequest(prompt="young man|tree, grass|city", negative_prompt="blurry", seed=10, batch_size=2,
                         n_iter=3)


def test_three_parts_make_four_combinations_in_grid_order():
    plan = expand_prompt_matrix(BASE)
    assert [r.prompt for r in plan.requests] == [
        "young man", "young man, tree, grass", "young man, city", "young man, tree, grass, city"]
    assert (plan.columns, plan.rows) == (2, 2)
    assert all(r.batch_size == 1 and r.n_iter == 1 and r.seed == 10 for r in plan.requests)
    assert [[(legend.text, legend.active) for legend in column] for column in plan.column_legends] == [
        [("tree, grass", False)], [("tree, grass", True)]]
    assert [[(legend.text, legend.active) for legend in row] for row in plan.row_legends] == [
        [("city", False)], [("city", True)]]


def test_options_start_space_negative_and_different_seeds():
    options = PromptMatrixOptions(put_at_start=True, separator="space", different_seeds=True)
    plan = expand_prompt_matrix(BASE, options)
    assert plan.requests[3].prompt == "tree, grass city young man"
    assert [r.seed for r in plan.requests] == [10, 11, 12, 13]
    negative = GenerationRequest(prompt="a photo", negative_prompt="EasyNegative|lowres, bad hands", seed=1)
    plan = expand_prompt_matrix(negative, PromptMatrixOptions(prompt_type="negative"))
    assert [r.negative_prompt for r in plan.requests] == ["EasyNegative", "EasyNegative, lowres, bad hands"]
    assert {r.prompt for r in plan.requests} == {"a photo"}
    assert (plan.columns, plan.rows) == (2, 1)


def test_random_seed_is_fixed_once_for_the_whole_matrix():
    plan = expand_prompt_matrix(GenerationRequest(prompt="a|b|c|d", seed=-1))
    assert len(plan.requests) == 8 and (plan.columns, plan.rows) == (4, 2)
    assert len({r.seed for r in plan.requests}) == 1 and plan.requests[0].seed >= 0


def test_parts_are_trimmed_and_bad_options_rejected():
    assert split_parts(" a ,| b,|c ") == ["a", "b", "c"]
    with pytest.raises(ValidationError, match="separator"):
        expand_prompt_matrix(BASE, PromptMatrixOptions(separator="tab"))
    with pytest.raises(ValidationError, match="at most"):
        expand_prompt_matrix(GenerationRequest(prompt="|".join("abcdefghijkl")))


def test_grid_infotext_carries_the_matrix_prompt_and_parses_back():
    plan = expand_prompt_matrix(BASE)
    cell = build_infotext("young man", "blurry", {"Steps": 20, "Sampler": "Euler a", "Seed": 10, "Size": (64, 64)})
    parsed = parse_infotext(plan.grid_infotext(cell))
    assert parsed.prompt == "young man|tree, grass|city"
    assert parsed.params["Script"] == "Prompt matrix" and parsed.params["Seed"] == "10"
