"""A1111 prompt syntax: attention, editing/alternation schedules, AND, extra networks, and property tests.

Expected values marked "A1111 doctest" are copied from the docstrings of A1111's `modules/prompt_parser.py`; the
others were checked against A1111's lark grammar run on the same input.
"""
from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webui.core.errors import PromptSyntaxError, ValidationError
from webui.core.prompt_attention import is_break, parse_attention
from webui.core.prompt_composition import split_and
from webui.core.prompt_network_tags import ExtraNetworkCall, extract_extra_networks
from webui.core.prompt_parser import parse_full
from webui.core.prompt_schedule import parse_prompt_schedule

# ----------------------------------------------------------------------------------------------------------------
# Attention

ATTENTION_CASES: list[tuple[str, list[tuple[str, float]]]] = [
    # A1111 doctests
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
    # every construct
    ("", [("", 1.0)]),
    ("((x))", [("x", 1.21)]),
    ("[x]", [("x", 1 / 1.1)]),
    ("[[x]]", [("x", 1 / 1.1 / 1.1)]),
    ("(x:1.3)", [("x", 1.3)]),
    ("(x: 1.3 )", [("x", 1.3)]),
    ("(x:-1)", [("x", -1.0)]),
    ("(x:.5)", [("x", 0.5)]),
    ("((x:2):1.5)", [("x", 3.0)]),
    ("[(x)]", [("x", 1.0)]),
    ("a [b", [("a ", 1.0), ("b", 1 / 1.1)]),
    ("a ((b", [("a ", 1.0), ("b", 1.21)]),
    ("a) b] c", [("a) b] c", 1.0)]),
    ("x:1.2)", [("x:1.2)", 1.0)]),  # weight with nothing to close: literal, as A1111
    ("a:b", [("a:b", 1.0)]),
    ("(a:b)", [("a:b", 1.1)]),
    ("\\\\", [("\\", 1.0)]),
    ("\\(x\\)", [("(x)", 1.0)]),
    ("a\\b", [("ab", 1.0)]),  # a lone backslash is dropped, as A1111
    ("(x:1.2.3)", [("x:1.2.3", 1.1)]),  # A1111 raises ValueError; we read the bad weight as text
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("a\nBREAK\nb", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("BREAK", [("BREAK", -1.0)]),
    ("a BREAK BREAK b", [("a", 1.0), ("BREAK", -1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("(a BREAK b)", [("a", 1.1), ("BREAK", -1.0), ("b", 1.1)]),  # A1111 would give ("BREAK", -1.1)
    ("(a BREAK b:-1)", [("a", -1.0), ("BREAK", -1.0), ("b", -1.0)]),  # a break never merges
    ("BREAKING break aBREAK", [("BREAKING break aBREAK", 1.0)]),
    ("a, (b), c", [("a, ", 1.0), ("b", 1.1), (", c", 1.0)]),
]


@pytest.mark.parametrize(("prompt", "expected"), ATTENTION_CASES, ids=[c[0] or "<empty>" for c in ATTENTION_CASES])
def test_parse_attention(prompt: str, expected: list[tuple[str, float]]) -> None:
    got = parse_attention(prompt)
    assert [text for text, _ in got] == [text for text, _ in expected]
    assert [weight for _, weight in got] == pytest.approx([weight for _, weight in expected])


def test_attention_keeps_a1111_float_order() -> None:
    """Weights are multiplied in A1111's order, so merges of equal floats happen exactly where A1111's do."""
    assert parse_attention("(((house:1.3))")[0][1] == 1.5730000000000004


def test_is_break() -> None:
    assert is_break(("BREAK", -1.0))
    assert not is_break(("BREAK", 1.0))
    assert not is_break(("x", -1.0))


# ----------------------------------------------------------------------------------------------------------------
# Schedules

SCHEDULE_CASES: list[tuple[str, int, list[tuple[int, str]]]] = [
    # A1111 doctests (10 steps)
    ("test", 10, [(10, "test")]),
    ("a [b:3]", 10, [(3, "a "), (10, "a b")]),
    ("a [b: 3]", 10, [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", 10, [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", 10, [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", 10, [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", 10, [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", 10, [(10, "a [unbalanced")]),
    ("a [b:.5] c", 10, [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", 10, [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    # the brief's cases
    ("[a:b:0.5]", 10, [(5, "a"), (10, "b")]),
    ("[a:b:3]", 10, [(3, "a"), (10, "b")]),
    ("[a::3]", 10, [(3, "a"), (10, "")]),
    ("[b:3]", 10, [(3, ""), (10, "b")]),
    ("[a:b:0.25]", 20, [(5, "a"), (20, "b")]),  # int(0.25 * 20)
    ("[a:b:0.33]", 10, [(3, "a"), (10, "b")]),  # int(3.3): truncated, not rounded
    ("[a:b:0.5]", 7, [(3, "a"), (7, "b")]),  # int(3.5)
    ("[a:b:0]", 10, [(10, "b")]),  # below step 1: the "to" part from the start
    ("[a:b:-2]", 10, [(10, "b")]),
    ("[a:b:10]", 10, [(10, "a")]),
    ("[a:b:99]", 10, [(10, "a")]),  # clamped to steps
    ("[a:b:1.5]", 10, [(1, "a"), (10, "b")]),  # >= 1 is a step number: int(1.5)
    ("[a:[b:c:6]:3] x", 10, [(3, "a x"), (6, "b x"), (10, "c x")]),
    ("[[a:b:2]:c:5]", 10, [(2, "a"), (5, "b"), (10, "c")]),
    ("[a|b]", 4, [(1, "a"), (2, "b"), (3, "a"), (4, "b")]),
    ("[a|b|c] d", 4, [(1, "a d"), (2, "b d"), (3, "c d"), (4, "a d")]),
    ("[fe|]male", 3, [(1, "female"), (2, "male"), (3, "female")]),
    ("[a|a]", 4, [(4, "a")]),  # identical consecutive texts merged
    ("[a|(b:1.1)]", 2, [(1, "a"), (2, "(b:1.1)")]),
    ("[a|[b:c:2]]", 4, [(1, "a"), (2, "b"), (3, "a"), (4, "c")]),
    ("[a:b:c]", 10, [(10, "[a:b:c]")]),  # non-numeric "when": literal text
    ("[a:b:3", 10, [(10, "[a:b:3")]),
    ("[a:b|c:3]", 10, [(10, "[a:b|c:3]")]),  # "|" outside an alternation: A1111's parser fails, text unchanged
    ("a | b [c:3]", 10, [(10, "a | b [c:3]")]),
    ("trailing \\", 10, [(10, "trailing \\")]),
    ("\\[a:3\\]", 10, [(10, "\\[a:3\\]")]),  # escaped brackets are no construct
    ("(x:1.2) [a:b:2]", 10, [(2, "(x:1.2) a"), (10, "(x:1.2) b")]),
    ("[a:b:3]:4]", 10, [(3, "a:4]"), (10, "b:4]")]),
    ("[a:3]]]", 10, [(3, "]]"), (10, "a]]")]),  # A1111's Earley parser happens to read this one literally
    ("", 10, [(10, "")]),
]


@pytest.mark.parametrize(
    ("prompt", "steps", "expected"), SCHEDULE_CASES, ids=[f"{c[0]!r}@{c[1]}" for c in SCHEDULE_CASES]
)
def test_parse_prompt_schedule(prompt: str, steps: int, expected: list[tuple[int, str]]) -> None:
    assert parse_prompt_schedule(prompt, steps) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("[a:b:1.5]", [(10, "a")]),  # 1.5 * 10, clamped
        ("[a:b:0.5]", [(5, "a"), (10, "b")]),
        ("[a:b:3]", [(3, "a"), (10, "b")]),
        ("[a:b:5e-1]", [(10, "b")]),  # no decimal point: a step number, int(0.5) = 0
    ],
)
def test_schedule_decimal_point_mode(prompt: str, expected: list[tuple[int, str]]) -> None:
    """A1111 >= 1.6's default ("new scheduling"): a decimal point makes a fraction."""
    assert parse_prompt_schedule(prompt, 10, decimal_point_is_fraction=True) == expected


def test_schedule_rejects_zero_steps() -> None:
    with pytest.raises(ValidationError):
        parse_prompt_schedule("a", 0)


def test_schedule_survives_deep_nesting() -> None:
    prompt = "(" * 5000 + "[a:b:2]" + ")" * 5000
    assert parse_prompt_schedule(prompt, 10) == [(10, prompt)]


def test_schedule_huge_when_is_clamped() -> None:
    assert parse_prompt_schedule("[a:b:1e999]", 10) == [(10, "a")]  # A1111: OverflowError


# ----------------------------------------------------------------------------------------------------------------
# AND

AND_CASES: list[tuple[str, list[tuple[str, float]]]] = [
    ("a AND b:0.5", [("a", 1.0), ("b", 0.5)]),
    ("a", [("a", 1.0)]),
    ("a:1.5", [("a", 1.5)]),
    ("a : -2 AND b : .5 AND c: 3.", [("a", -2.0), ("b", 0.5), ("c", 3.0)]),
    ("cat AND dog", [("cat", 1.0), ("dog", 1.0)]),
    ("ANDROID and AND_X", [("ANDROID and AND_X", 1.0)]),  # whole uppercase word only
    ("(x:1.2) AND y", [("(x:1.2)", 1.0), ("y", 1.0)]),  # an attention weight is not an AND weight
    ("[a AND b:3]", [("[a", 1.0), ("b:3]", 1.0)]),  # like A1111, brackets do not protect AND
    ("a AND", [("a", 1.0), ("", 1.0)]),
    ("a\nline:2 AND b", [("a\nline", 2.0), ("b", 1.0)]),
]


@pytest.mark.parametrize(("prompt", "expected"), AND_CASES)
def test_split_and(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert split_and(prompt) == expected


# ----------------------------------------------------------------------------------------------------------------
# Extra networks


def test_extract_extra_networks_weights() -> None:
    text, calls = extract_extra_networks("a <lora:detail:0.5:0.8> cat, <lyco:style:0.7>, <lora:plain>")
    assert text == "a  cat, , "
    assert calls == [
        ExtraNetworkCall("lora", "detail", 0.5, 0.8, ("detail", "0.5", "0.8")),
        ExtraNetworkCall("lyco", "style", 0.7, 0.7, ("style", "0.7")),
        ExtraNetworkCall("lora", "plain", 1.0, 1.0, ("plain",)),
    ]


def test_extract_extra_networks_named_args_and_other_kinds() -> None:
    _, calls = extract_extra_networks("<lora:x:1:unet=0.3:dyn=16><hypernet:h:0.6><custom:thing:high>")
    lora, hypernet, custom = calls
    assert (lora.te_weight, lora.unet_weight) == (1.0, 0.3)
    assert lora.named_args == {"unet": "0.3", "dyn": "16"}
    assert lora.positional_args == ("x", "1")
    assert (hypernet.kind, hypernet.name, hypernet.te_weight) == ("hypernet", "h", 0.6)
    assert (custom.name, custom.te_weight, custom.raw_args) == ("thing", 1.0, ("thing", "high"))


def test_extract_extra_networks_inside_constructs_and_names_with_spaces() -> None:
    text, calls = extract_extra_networks("[<lora:a b:0.5>x:y:3] (<lora:c>)")
    assert text == "[x:y:3] ()"
    assert [c.name for c in calls] == ["a b", "c"]


def test_extract_extra_networks_leaves_other_angle_brackets() -> None:
    assert extract_extra_networks("a <b> <:x> <lora:> c > d") == ("a <b> <:x> <lora:> c > d", [])


@pytest.mark.parametrize("tag", ["<lora:x:abc>", "<lyco:x:1:nan>", "<lora:x:inf>", "<lora:x:te=oops>"])
def test_bad_lora_weight_is_a_syntax_error(tag: str) -> None:
    with pytest.raises(PromptSyntaxError):
        extract_extra_networks(tag)


# ----------------------------------------------------------------------------------------------------------------
# parse_full


def test_parse_full() -> None:
    parsed = parse_full("<lora:d:0.5>a (cat:1.2) [x:y:2] AND b BREAK c:0.5", 4)
    assert parsed.extra_networks == (ExtraNetworkCall("lora", "d", 0.5, 0.5, ("d", "0.5")),)
    assert parsed.text == "a (cat:1.2) [x:y:2] AND b BREAK c:0.5"
    first, second = parsed.subprompts
    assert (first.text, first.weight) == ("a (cat:1.2) [x:y:2]", 1.0)
    assert [(e.end_step, e.text) for e in first.schedule] == [(2, "a (cat:1.2) x"), (4, "a (cat:1.2) y")]
    assert first.schedule[0].pieces == (("a ", 1.0), ("cat", 1.2), (" x", 1.0))
    assert (second.text, second.weight) == ("b BREAK c", 0.5)
    assert second.schedule[0].pieces == (("b", 1.0), ("BREAK", -1.0), ("c", 1.0))
    assert parsed.unique_texts == ("a (cat:1.2) x", "a (cat:1.2) y", "b BREAK c")


def test_subprompt_at_step_uses_a1111_lookup() -> None:
    """A1111's sampler counts calls from 0 and takes the first entry with call <= end_step."""
    sub = parse_full("[a:b:2]", 5).subprompts[0]
    assert [sub.at_step(i).text for i in range(7)] == ["a", "a", "a", "b", "b", "b", "b"]


# ----------------------------------------------------------------------------------------------------------------
# Properties

SPECIAL = "()[]\\:|<>"
FUZZ_ALPHABET = st.sampled_from(list("ab ():[]|\\<>.0123-+e\n") + ["BREAK", " AND ", "lora", "0.5", ".5"])
fuzz_prompts = st.one_of(st.text(max_size=60), st.lists(FUZZ_ALPHABET, max_size=30).map("".join))
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(fuzz_prompts)
def test_attention_never_fails(prompt: str) -> None:
    pieces = parse_attention(prompt)
    assert pieces
    for (text_a, weight_a), (_, weight_b) in zip(pieces, pieces[1:], strict=False):
        assert weight_a != weight_b or is_break((text_a, weight_a))


@FAST
@given(fuzz_prompts, st.integers(min_value=1, max_value=60))
def test_schedule_never_fails(prompt: str, steps: int) -> None:
    schedule = parse_prompt_schedule(prompt, steps)
    ends = [end for end, _ in schedule]
    assert ends == sorted(set(ends)) and ends[-1] == steps and ends[0] >= 1
    assert all(a[1] != b[1] for a, b in zip(schedule, schedule[1:], strict=False))


@FAST
@given(fuzz_prompts)
def test_split_and_never_fails(prompt: str) -> None:
    parts = split_and(prompt)
    assert parts
    assert not any(re.search(r"\bAND\b", text) for text, _ in parts)
    assert all(text == text.strip() for text, _ in parts)


@FAST
@given(fuzz_prompts)
def test_extract_extra_networks_only_raises_syntax_errors(prompt: str) -> None:
    try:
        text, calls = extract_extra_networks(prompt)
    except PromptSyntaxError:
        return
    assert len(text) <= len(prompt)
    assert all(call.kind for call in calls)


@FAST
@given(st.text(max_size=60).filter(lambda s: "<" not in s))
def test_extract_extra_networks_without_tags_is_identity(prompt: str) -> None:
    assert extract_extra_networks(prompt) == (prompt, [])


@FAST
@given(fuzz_prompts, st.integers(min_value=1, max_value=30))
def test_parse_full_never_fails_on_tag_free_prompts(prompt: str, steps: int) -> None:
    parsed = parse_full(prompt.replace("<", ""), steps)
    assert parsed.subprompts
    assert all(sub.schedule[-1].end_step == steps for sub in parsed.subprompts)


plain_text = st.text(alphabet=st.characters(blacklist_characters=SPECIAL), max_size=80).filter(
    lambda s: "BREAK" not in s
)


@FAST
@given(plain_text)
def test_attention_is_stable_on_plain_text(prompt: str) -> None:
    pieces = parse_attention(prompt)
    assert "".join(text for text, _ in pieces) == prompt
    assert all(weight == 1.0 for _, weight in pieces)


@FAST
@given(plain_text, st.integers(min_value=1, max_value=30))
def test_schedule_is_identity_on_plain_text(prompt: str, steps: int) -> None:
    assert parse_prompt_schedule(prompt, steps) == [(steps, prompt)]


@FAST
@given(
    st.text(alphabet=string.ascii_letters + " ,", min_size=1, max_size=20).filter(lambda s: "BREAK" not in s),
    st.floats(0.1, 3.0),
)
def test_explicit_weight_round_trips(word: str, weight: float) -> None:
    pieces = parse_attention(f"({word}:{weight})")
    assert pieces == [(word, pytest.approx(weight))]
