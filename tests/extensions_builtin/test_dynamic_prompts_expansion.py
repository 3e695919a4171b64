"""Dynamic prompts' expansion logic: variants, wildcards from several folders, combinatorial counts, seeds."""
from __future__ import annotations

import pytest

from tests.extensions_builtin.conftest import builtin_module

expansion = builtin_module("dynamic-prompts", "expansion")
Options = expansion.DynamicOptions


@pytest.fixture()
def expander(tmp_path):
    data = tmp_path / "wildcards"
    (data / "sub").mkdir(parents=True)
    (data / "color.txt").write_text("red\nblue\n# a comment\ngreen\n", encoding="utf-8")
    (data / "sub" / "shape.txt").write_text("circle\nsquare\n", encoding="utf-8")
    other = tmp_path / "ext-wildcards"
    other.mkdir()
    (other / "animal.txt").write_text("cat\ndog\n", encoding="utf-8")
    return expansion.PromptExpander([data, other, tmp_path / "missing"])


def test_same_seed_gives_same_variant_and_a1111_syntax_survives(expander):
    template = "a {red|green|blue} ball [cat|dog] <lora:x:1> (big:1.3) [a:b:0.5] BREAK z AND q"
    first = [expander.random_prompt(template, seed) for seed in range(40)]
    assert first == [expander.random_prompt(template, seed) for seed in range(40)]
    assert {p.split()[1] for p in first} == {"red", "green", "blue"}
    for prompt in first:
        assert prompt.endswith(" ball [cat|dog] <lora:x:1> (big:1.3) [a:b:0.5] BREAK z AND q")


def test_several_of_and_wildcards_from_every_folder(expander):
    assert expander.wildcard_names() == ["animal", "color", "sub/shape"]
    picks = expander.random_prompt("{2$$a|b|c}", 3).split(",")
    assert len(picks) == 2 and set(picks) <= {"a", "b", "c"} and picks[0] != picks[1]
    seen = {expander.random_prompt("__color__ __animal__ __sub/shape__", s) for s in range(60)}
    assert {p.split()[0] for p in seen} == {"red", "blue", "green"}
    assert {p.split()[1] for p in seen} == {"cat", "dog"}
    assert {p.split()[2] for p in seen} == {"circle", "square"}


def test_combinatorial_counts_and_limit(expander):
    combos = expander.combinations("{a|b} __color__ __animal__")
    assert len(combos) == 2 * 3 * 2 == len(set(combos))
    assert len(expander.combinations("{a|b} __color__ __animal__", limit=5)) == 5
    assert expansion.PromptExpander([], max_combinations=3).combinations("{a|b} {c|d}") == ["a c", "a d", "b c"]


def test_plan_seed_per_image_matches_single_image_plans(expander):
    template, negative = "{red|green|blue|pink|grey} {cat|dog|fox}", "{ugly|blurry}"
    options = Options()
    parts = expander.plan(template, negative, 100, batch_size=2, n_iter=3, options=options)
    assert sum(p.count for p in parts) == 6 and all(p.count <= 2 for p in parts)
    per_image = [(p.prompt, p.negative_prompt) for p in parts for _ in range(p.count)]
    for index in range(6):  # image i of the job == a one-image job with seed 100 + i
        alone = expander.plan(template, negative, 100 + index, 1, 1, options)
        assert [(alone[0].prompt, alone[0].negative_prompt)] == [per_image[index]]
    assert len(set(per_image)) > 1


def test_plan_fixed_seed_and_combinatorial(expander):
    fixed = expander.plan("{a|b|c|d|e|f}", "", 7, 2, 2, Options(fixed_seed=True))
    assert len(fixed) == 1 and fixed[0].count == 4 and fixed[0].first == 0
    combos = expander.plan("{a|b} {c|d}", "", 7, 2, 2, Options(combinatorial=True))
    assert [p.prompt for p in combos] == ["a c", "a d", "b c", "b d"] * 2
    assert [p.first for p in combos] == [0, 2, 4, 6, 8, 10, 12, 14] and {p.count for p in combos} == {2}
    same_seed = expander.plan("{a|b} {c|d}", "", 7, 1, 1, Options(combinatorial=True, fixed_seed=True))
    assert [p.first for p in same_seed] == [0, 0, 0, 0]
    limited = expander.plan("{a|b} {c|d}", "", 7, 1, 1, Options(combinatorial=True, max_generations=3))
    assert len(limited) == 3


def test_options_from_args_fields_and_defaults():
    defaults = Options(enabled=True, combinatorial=False, max_generations=0, fixed_seed=False)
    assert Options.from_values([False], {}, defaults) == Options(enabled=False)
    assert Options.from_values([True, True, 5, True], {}, defaults) == Options(True, True, 5, True)
    assert Options.from_values([], {"combinatorial": "true", "max_generations": "2"}, defaults) == \
        Options(True, True, 2, False)
    with pytest.raises(expansion.TemplateError, match="whole number"):
        Options.from_values([True, True, "many"], {}, defaults)


def test_bad_template_is_a_clear_error(expander):
    with pytest.raises(expansion.TemplateError, match="could not read the prompt '{a|b'"):
        expander.random_prompt("{a|b", 1)
    assert expander.random_prompt("plain [a|b] prompt", 1) == "plain [a|b] prompt"
    assert not expansion.is_dynamic("plain [a|b] <lora:x:1>")


def test_combinatorial_jobs_stay_under_the_job_image_limit(expander):
    options = Options(combinatorial=True)
    assert len(expander.plan("{a|b|c|d}", "", 1, 10, 25, options)) == 100  # 4 x 10 x 25 = 1000 images: allowed
    with pytest.raises(expansion.TemplateError, match="more than 1000 images"):
        expander.plan("{a|b|c|d|e}", "", 1, 10, 25, options)
