"""A1111's prompt language, parsed into plain data the engine turns into embeddings: the entry point.

Why pure and in one place: the engine (prompt encoding, LoRA activation), the UI (token counter) and the API all
need the same reading of a prompt, and users paste prompts written for AUTOMATIC1111, so every construct must mean
what it means there. No torch here: the result is text, weights and step numbers.

The pipeline, in A1111's order (see `parse_full`)::

    prompt --extract_extra_networks--> text without <lora:...> tags, plus the calls        (prompt_network_tags)
           --split_and--------------> composable sub-prompts with weights ("a AND b:0.5")  (prompt_composition)
           --parse_prompt_schedule--> per sub-prompt: [(end_step, text), ...]             (prompt_schedule,
                                      prompt editing and alternation                        prompt_grammar)
           --parse_attention--------> per scheduled text: [(piece, weight), ...]          (prompt_attention)
                                      ("(x:1.3)", "[x]", BREAK)

This module puts the steps together and holds the result types; each step lives in the module named beside it.

Conventions kept from A1111 (and checked against its doctests in tests/core/test_prompt_parser.py):

* Steps in a schedule are 1-based and `end_step` is inclusive: `[a:b:3]` at 10 steps is `[(3, "a"), (10, "b")]`,
  the "when" step is the last step of the "from" part. A1111's sampler asks for the entry with the smallest
  `end_step >= i` where `i` is its 0-based call counter, so "a" is in fact used for calls 0..3 (see
  `SubPrompt.at_step`, which implements exactly that lookup).
* `when` < 1 is a fraction of the steps (`int(when * steps)`), otherwise a step number; it is clamped to `steps`
  and a `when` that ends up below 1 adds no boundary (the "to" part is used throughout). A1111 >= 1.6 by default
  decides "fraction or step" by the presence of a decimal point instead; pass `decimal_point_is_fraction=True`.
* Alternation `[a|b]` makes every step a boundary; step `s` uses option `(s - 1) % n`. Empty options are allowed.
* A prompt A1111's grammar rejects (a `|` outside an alternation, a backslash at the very end) is not scheduled at
  all: the schedule is the whole prompt, unchanged. Brackets that do not form a construct are literal text.
* Attention: unbalanced `(` / `[` apply their multiplier to everything after them; stray `)` / `]` are literal.

One deliberate difference in scheduling: where a construct is directly followed by stray brackets, A1111's lark
(Earley) parser picks between "construct" and "literal" by an accident of its ambiguity resolution -- `[a:3]]` and
`[a:3]]]]` are edited but `[a:3]]]` is literal text (it depends on the parity of the stray run). We always read
the construct. Everything else matches A1111 on fuzzed input.
"""
from __future__ import annotations

from dataclasses import dataclass

from webui.core.prompt_attention import Piece, parse_attention
from webui.core.prompt_composition import split_and
from webui.core.prompt_network_tags import ExtraNetworkCall, extract_extra_networks
from webui.core.prompt_schedule import parse_prompt_schedule


@dataclass(frozen=True)
class ScheduleEntry:
    """The text in force up to and including `end_step`, and its attention pieces."""

    end_step: int
    text: str
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class SubPrompt:
    """One composable-diffusion part of the prompt (`AND`-separated) with its weight and schedule."""

    text: str
    weight: float
    schedule: tuple[ScheduleEntry, ...]

    def at_step(self, step: int) -> ScheduleEntry:
        """The entry A1111 uses at sampler call `step` (0-based): the first with `step <= end_step`.

        Past the last entry (a sampler that calls the model more often than `steps`) the last entry is used;
        A1111 falls back to the first one there, which is an accident of its loop rather than a rule.
        """
        for entry in self.schedule:
            if step <= entry.end_step:
                return entry
        return self.schedule[-1]


@dataclass(frozen=True)
class ParsedPrompt:
    """Everything the engine needs from one prompt string."""

    original: str
    text: str
    steps: int
    extra_networks: tuple[ExtraNetworkCall, ...]
    subprompts: tuple[SubPrompt, ...]

    @property
    def unique_texts(self) -> tuple[str, ...]:
        """Every distinct scheduled text, in first-use order: what the text encoder must encode once each."""
        seen: dict[str, None] = {}
        for sub in self.subprompts:
            for entry in sub.schedule:
                seen.setdefault(entry.text)
        return tuple(seen)


def parse_full(prompt: str, steps: int, *, decimal_point_is_fraction: bool = False) -> ParsedPrompt:
    """Parse a prompt for `steps` sampling steps: extra networks out, AND-split, schedules, attention pieces."""
    text, calls = extract_extra_networks(prompt)
    pieces_cache: dict[str, tuple[Piece, ...]] = {}
    subprompts = tuple(_scheduled(sub_text, weight, steps, decimal_point_is_fraction, pieces_cache)
                       for sub_text, weight in split_and(text))
    return ParsedPrompt(prompt, text, steps, tuple(calls), subprompts)


def reschedule(parsed: ParsedPrompt, steps: int, *, decimal_point_is_fraction: bool = False) -> ParsedPrompt:
    """The same prompt scheduled for another step count (the hires pass), without taking it apart again: the
    extra-network calls and the AND parts are kept, only each part's schedule is rendered for `steps`."""
    if steps == parsed.steps:
        return parsed
    pieces_cache: dict[str, tuple[Piece, ...]] = {}
    subprompts = tuple(_scheduled(sub.text, sub.weight, steps, decimal_point_is_fraction, pieces_cache)
                       for sub in parsed.subprompts)
    return ParsedPrompt(parsed.original, parsed.text, steps, parsed.extra_networks, subprompts)


def parse_negative(prompt: str, steps: int, *, decimal_point_is_fraction: bool = False) -> SubPrompt:
    """The negative prompt as one part: editing and emphasis apply, but AND and extra networks do not (as in A1111,
    a `<lora:...>` tag there is plain text)."""
    return _scheduled(prompt, 1.0, steps, decimal_point_is_fraction, {})


def _scheduled(text: str, weight: float, steps: int, decimal_point_is_fraction: bool,
               pieces_cache: dict[str, tuple[Piece, ...]]) -> SubPrompt:
    """One part with its schedule; texts that recur in the schedule are split into pieces once."""
    entries: list[ScheduleEntry] = []
    for end_step, step_text in parse_prompt_schedule(text, steps, decimal_point_is_fraction=decimal_point_is_fraction):
        if step_text not in pieces_cache:
            pieces_cache[step_text] = tuple(parse_attention(step_text))
        entries.append(ScheduleEntry(end_step, step_text, pieces_cache[step_text]))
    return SubPrompt(text, weight, tuple(entries))
