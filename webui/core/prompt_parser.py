"""A1111's prompt language, parsed into plain data the engine turns into embeddings.

Why one pure module: the engine (prompt encoding, LoRA activation), the UI (token counter) and the API all need the
same reading of a prompt, and users paste prompts written for AUTOMATIC1111, so every construct must mean what it
means there. No torch here: the result is text, weights and step numbers.

The pipeline, in A1111's order (see `parse_full`)::

    prompt --extract_extra_networks--> text without <lora:...> tags, plus the calls
           --split_and--------------> composable sub-prompts with weights ("a AND b:0.5")
           --parse_prompt_schedule--> per sub-prompt: [(end_step, text), ...] (prompt editing, alternation)
           --parse_attention--------> per scheduled text: [(piece, weight), ...] ("(x:1.3)", "[x]", BREAK)

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

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from webui.core.errors import PromptSyntaxError, ValidationError

Piece = tuple[str, float]
"""One run of prompt text and its attention weight; `("BREAK", -1.0)` marks a chunk break."""

BREAK_TEXT = "BREAK"
BREAK_WEIGHT = -1.0
ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
LORA_KINDS = frozenset({"lora", "lyco"})

# Nesting deeper than this is not a prompt anyone writes; stopping there keeps recursion far from Python's limit.
MAX_NESTING = 100


# ----------------------------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True)
class ExtraNetworkCall:
    """One `<kind:name:args...>` tag, e.g. `<lora:detail:0.5:0.8>`.

    `raw_args` is every `:`-separated item of the tag after the kind, the name included (A1111's `items`), so a
    network type with its own arguments (`dyn=16`, a 4th positional) can read them.
    """

    kind: str
    name: str
    te_weight: float = 1.0
    unet_weight: float = 1.0
    raw_args: tuple[str, ...] = ()

    @property
    def positional_args(self) -> tuple[str, ...]:
        """Items without exactly one `=`, in order (A1111's `positional`; index 0 is the name)."""
        return tuple(item for item in self.raw_args if item.count("=") != 1)

    @property
    def named_args(self) -> MappingProxyType[str, str]:
        """`key=value` items (A1111's `named`), e.g. `te`, `unet`, `dyn`."""
        pairs = (item.split("=", 1) for item in self.raw_args if item.count("=") == 1)
        return MappingProxyType({key: value for key, value in pairs})


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


def is_break(piece: Piece) -> bool:
    """Whether a piece from `parse_attention` is the BREAK marker (start a new 75-token chunk)."""
    return piece[0] == BREAK_TEXT and piece[1] == BREAK_WEIGHT


# ----------------------------------------------------------------------------------------------------------------
# Extra networks: <kind:name:te:unet>

_EXTRA_NETWORK_RE = re.compile(r"<(\w+):([^>]+)>")


def extract_extra_networks(prompt: str, default_weight: float = 1.0) -> tuple[str, list[ExtraNetworkCall]]:
    """Remove every `<kind:args>` tag from the prompt and return the remaining text and the calls, in order.

    Like A1111 the tags are taken out everywhere (also inside brackets or edits) and replaced by nothing, and the
    remaining text is not otherwise tidied. Weights: `<lora:n>` = default, `<lora:n:w>` = w for both text encoder
    and UNet, `<lora:n:te:unet>` separate; `te=`/`unet=` named items override.

    Raises PromptSyntaxError for a `lora`/`lyco` weight that is not a finite number (A1111 fails there too).
    Other kinds' arguments are opaque to us: a weight we cannot read falls back to the default.
    """
    calls: list[ExtraNetworkCall] = []

    def take(match: re.Match[str]) -> str:
        calls.append(_make_call(match.group(1), match.group(2), default_weight))
        return ""

    return _EXTRA_NETWORK_RE.sub(take, prompt), calls


def _make_call(kind: str, args: str, default_weight: float) -> ExtraNetworkCall:
    """Build one call from a tag's kind and its `:`-separated argument string."""
    items = tuple(args.split(":"))
    call = ExtraNetworkCall(kind=kind, name="", raw_args=items)
    positional, named = call.positional_args, call.named_args
    strict = kind.lower() in LORA_KINDS
    te_text = named.get("te", positional[1] if len(positional) > 1 else None)
    te_weight = _read_weight(te_text, default_weight, strict, kind)
    unet_text = named.get("unet", positional[2] if len(positional) > 2 else None)
    unet_weight = _read_weight(unet_text, te_weight, strict, kind)
    name = positional[0] if positional else ""
    return ExtraNetworkCall(kind=kind, name=name, te_weight=te_weight, unet_weight=unet_weight, raw_args=items)


def _read_weight(text: str | None, default: float, strict: bool, kind: str) -> float:
    """A tag's weight item as a float; a missing item gives `default`."""
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value):
        return value
    if strict:
        raise PromptSyntaxError(f"The weight {text!r} in a <{kind}:...> tag is not a number.")
    return default


# ----------------------------------------------------------------------------------------------------------------
# Composable diffusion: "a AND b:0.5"

_AND_RE = re.compile(r"\bAND\b")
_AND_WEIGHT_RE = re.compile(r"^(.*?)(?:\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)))?\s*$", re.S)


def split_and(prompt: str) -> list[tuple[str, float]]:
    """Split on the word `AND` (uppercase, whole word) into sub-prompts, each with an optional `:weight` suffix.

    As in A1111 the split ignores brackets (an `AND` inside `[...]` splits too) and a trailing `:number` is always
    a weight. Unlike A1111 the texts are stripped of surrounding whitespace, which the CLIP tokenizer drops anyway.
    """
    result: list[tuple[str, float]] = []
    for part in _AND_RE.split(prompt):
        match = _AND_WEIGHT_RE.match(part)
        if match is None:  # cannot happen: the pattern matches any string; kept for the type checker
            result.append((part.strip(), 1.0))
            continue
        weight = float(match.group(2)) if match.group(2) is not None else 1.0
        result.append((match.group(1).strip(), weight))
    return result


# ----------------------------------------------------------------------------------------------------------------
# Prompt editing and alternation: the schedule


@dataclass(frozen=True)
class _Edit:
    """`[before:after:when]`; `before` is None for the two-part form `[after:when]`."""

    before: _Seq | None
    after: _Seq
    when: str


@dataclass(frozen=True)
class _Alt:
    """`[a|b|c]`: option `(step - 1) % n` at each step."""

    options: tuple[_Seq, ...]


@dataclass(frozen=True)
class _Seq:
    """A run of literal text and constructs."""

    items: tuple[_Node, ...] = ()


_Node = str | _Edit | _Alt | _Seq

_PLAIN_RE = re.compile(r"(?:[^\\\[\]():|]|\\.)+")
_NUMBER = r"[+-]?(?:\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)"
_WHEN_TAIL_RE = re.compile(rf"\s*({_NUMBER})\s*\]")
_STRAY = frozenset("[]():")


class _TooDeep(Exception):
    """Nesting beyond MAX_NESTING: the prompt is then treated as one that does not parse."""


class _ScheduleGrammar:
    """Recursive-descent reading of A1111's lark grammar for prompt editing.

    Why not a plain regex: edits nest (`[a:[b:c:2]:5]`) and may hold emphasis. Why this shape: A1111's grammar
    lets any bracket that does not close a construct stand as literal text at the top level, and prefers the
    construct where one fits; a construct that starts at a given position has only one possible reading, so trying
    it once per bracket (memoised) and falling back to literal text is the same reading, in linear time.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.memo: dict[int, tuple[_Node, int] | None] = {}

    def parse(self) -> _Seq | None:
        """The whole prompt, or None where A1111's parser fails (stray `|`, trailing backslash)."""
        items: list[_Node] = []
        pos, end = 0, len(self.text)
        while pos < end:
            plain = _PLAIN_RE.match(self.text, pos)
            if plain:
                items.append(plain.group())
                pos = plain.end()
                continue
            char = self.text[pos]
            found = self.construct(pos, 0) if char in "([" else None
            if found is not None:
                items.append(found[0])
                pos = found[1]
            elif char in _STRAY:
                items.append(char)
                pos += 1
            else:  # "|" outside an alternation, or a backslash with nothing to escape
                return None
        return _Seq(tuple(items))

    def construct(self, pos: int, depth: int) -> tuple[_Node, int] | None:
        """The construct opening at `pos` (`(` or `[`) and the position after it, or None."""
        if depth > MAX_NESTING:
            raise _TooDeep
        if pos not in self.memo:
            self.memo[pos] = self._round(pos, depth) if self.text[pos] == "(" else self._square(pos, depth)
        return self.memo[pos]

    def sequence(self, pos: int, depth: int) -> tuple[_Seq, int] | None:
        """A nested prompt from `pos` up to the next `)`, `]`, `:`, `|` or the end; None if a bracket fails."""
        items: list[_Node] = []
        while pos < len(self.text):
            plain = _PLAIN_RE.match(self.text, pos)
            if plain:
                items.append(plain.group())
                pos = plain.end()
            elif self.text[pos] in "([":
                found = self.construct(pos, depth + 1)
                if found is None:
                    return None
                items.append(found[0])
                pos = found[1]
            elif self.text[pos] == "\\":
                return None
            else:
                break
        return _Seq(tuple(items)), pos

    def _at(self, pos: int) -> str:
        return self.text[pos] if pos < len(self.text) else ""

    def _round(self, pos: int, depth: int) -> tuple[_Node, int] | None:
        """`(x)` or `(x:y)`: emphasis, kept as literal text for scheduling purposes."""
        first = self.sequence(pos + 1, depth)
        if first is None:
            return None
        inner, pos = first
        if self._at(pos) == ")":
            return _Seq(("(", inner, ")")), pos + 1
        if self._at(pos) != ":":
            return None
        second = self.sequence(pos + 1, depth)
        if second is None or self._at(second[1]) != ")":
            return None
        return _Seq(("(", inner, ":", second[0], ")")), second[1] + 1

    def _square(self, pos: int, depth: int) -> tuple[_Node, int] | None:
        """`[x]` (emphasis), `[a|b]` (alternation) or `[a:b:when]` / `[b:when]` (editing)."""
        first = self.sequence(pos + 1, depth)
        if first is None:
            return None
        inner, pos = first
        sep = self._at(pos)
        if sep == "]":
            return _Seq(("[", inner, "]")), pos + 1
        if sep == "|":
            return self._alternation(inner, pos, depth)
        if sep == ":":
            return self._edit(inner, pos, depth)
        return None

    def _alternation(self, first: _Seq, pos: int, depth: int) -> tuple[_Node, int] | None:
        options = [first]
        while self._at(pos) == "|":
            found = self.sequence(pos + 1, depth)
            if found is None:
                return None
            options.append(found[0])
            pos = found[1]
        if self._at(pos) != "]":
            return None
        return _Alt(tuple(options)), pos + 1

    def _edit(self, first: _Seq, colon: int, depth: int) -> tuple[_Node, int] | None:
        tail = _WHEN_TAIL_RE.match(self.text, colon + 1)
        if tail:
            return _Edit(None, first, tail.group(1)), tail.end()
        second = self.sequence(colon + 1, depth)
        if second is None or self._at(second[1]) != ":":
            return None
        tail = _WHEN_TAIL_RE.match(self.text, second[1] + 1)
        if tail is None:
            return None
        return _Edit(first, second[0], tail.group(1)), tail.end()


def _when_step(when: str, steps: int, decimal_point_is_fraction: bool) -> int:
    """The last step of the "from" part, as A1111 computes it (clamped to `steps`, may be <= 0)."""
    value = float(when)
    is_fraction = "." in when if decimal_point_is_fraction else value < 1
    if is_fraction:
        value *= steps
    if value >= steps:  # also catches inf from an absurdly long number
        return steps
    return int(value) if value > -steps else -steps


def _walk(node: _Node) -> Iterator[_Node]:
    """Every node of the tree, the options and both sides of edits included."""
    yield node
    children: Sequence[_Node | None] = ()
    if isinstance(node, _Seq):
        children = node.items
    elif isinstance(node, _Edit):
        children = (node.before, node.after)
    elif isinstance(node, _Alt):
        children = node.options
    for child in children:
        if child is not None:
            yield from _walk(child)


def _boundaries(tree: _Seq, steps: int, decimal_point_is_fraction: bool) -> list[int]:
    """The steps at which some part of the prompt may change, plus the last step."""
    found = {steps}
    for node in _walk(tree):
        if isinstance(node, _Alt):
            found.update(range(1, steps + 1))
        elif isinstance(node, _Edit):
            when = _when_step(node.when, steps, decimal_point_is_fraction)
            if when >= 1:
                found.add(when)
    return sorted(found)


def _render(node: _Node | None, step: int, steps: int, decimal_point_is_fraction: bool) -> str:
    """The prompt text in force at 1-based `step`."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, _Seq):
        return "".join(_render(item, step, steps, decimal_point_is_fraction) for item in node.items)
    if isinstance(node, _Alt):
        return _render(node.options[(step - 1) % len(node.options)], step, steps, decimal_point_is_fraction)
    use_before = step <= _when_step(node.when, steps, decimal_point_is_fraction)
    return _render(node.before if use_before else node.after, step, steps, decimal_point_is_fraction)


def parse_prompt_schedule(
    prompt: str, steps: int, *, decimal_point_is_fraction: bool = False
) -> list[tuple[int, str]]:
    """`[(end_step, text), ...]`: the prompt text in force up to and including each `end_step` (1-based).

    Consecutive steps with the same text are merged (A1111 keeps them apart; the lookup result is the same).
    The last `end_step` is always `steps`. Raises ValidationError for `steps` < 1.
    """
    if steps < 1:
        raise ValidationError(f"Steps must be at least 1 to schedule a prompt (got {steps}).")
    try:
        tree = _ScheduleGrammar(prompt).parse()
    except _TooDeep:
        tree = None
    if tree is None:
        return [(steps, prompt)]
    schedule: list[tuple[int, str]] = []
    for step in _boundaries(tree, steps, decimal_point_is_fraction):
        text = _render(tree, step, steps, decimal_point_is_fraction)
        if schedule and schedule[-1][1] == text:
            schedule[-1] = (step, text)
        else:
            schedule.append((step, text))
    return schedule


# ----------------------------------------------------------------------------------------------------------------
# Attention: (x), [x], (x:1.3), escapes, BREAK

_ATTENTION_RE = re.compile(
    r"""
    \\[()\[\]\\]                                        # escaped bracket or backslash: a literal
    | \\                                                # any other backslash: dropped
    | \( | \[                                           # openers
    | :\s*(?P<weight>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)  # ":1.3)" closes a round bracket with that weight
    | \) | \]                                           # closers
    | [^\\()\[\]:]+                                     # plain text
    | :                                                 # a colon that is not a weight
    """,
    re.X,
)
_BREAK_RE = re.compile(r"\s*\bBREAK\b\s*", re.S)


class _AttentionBuilder:
    """Collects pieces as mutable `[text, weight]` pairs while brackets open and close.

    A BREAK marker has weight None so that no multiplier and no merge ever touches it.
    """

    def __init__(self) -> None:
        self.pieces: list[list] = []
        self.round: list[int] = []
        self.square: list[int] = []

    def feed(self, match: re.Match[str]) -> None:
        token, weight = match.group(0), match.group("weight")
        if token.startswith("\\"):
            self.pieces.append([token[1:], 1.0])
        elif token == "(":
            self.round.append(len(self.pieces))
        elif token == "[":
            self.square.append(len(self.pieces))
        elif weight is not None and self.round:
            self.multiply(self.round.pop(), float(weight))
        elif token == ")" and self.round:
            self.multiply(self.round.pop(), ROUND_MULTIPLIER)
        elif token == "]" and self.square:
            self.multiply(self.square.pop(), SQUARE_MULTIPLIER)
        else:
            self.add_text(token)

    def add_text(self, text: str) -> None:
        for index, part in enumerate(_BREAK_RE.split(text)):
            if index:
                self.pieces.append([BREAK_TEXT, None])
            self.pieces.append([part, 1.0])

    def multiply(self, start: int, multiplier: float) -> None:
        for piece in self.pieces[start:]:
            if piece[1] is not None:
                piece[1] *= multiplier

    def finish(self) -> list[Piece]:
        """Close what is still open (round first, then square, as A1111), merge, drop empty pieces."""
        for start in self.round:
            self.multiply(start, ROUND_MULTIPLIER)
        for start in self.square:
            self.multiply(start, SQUARE_MULTIPLIER)
        merged: list[list] = []
        for piece in self.pieces:
            if merged and piece[1] is not None and merged[-1][1] == piece[1]:
                merged[-1][0] += piece[0]
            else:
                merged.append(piece)
        result = [(text, BREAK_WEIGHT if weight is None else weight) for text, weight in merged if text]
        return result or [("", 1.0)]


def parse_attention(text: str) -> list[Piece]:
    """Split text into `(piece, weight)` runs the way A1111's `parse_prompt_attention` does.

    `(x)` multiplies by 1.1, `[x]` divides by 1.1, `(x:1.3)` multiplies by 1.3; nesting multiplies.
    `\\(` `\\)` `\\[` `\\]` `\\\\` are literal characters and any other backslash is dropped. A `(` or `[` never
    closed applies to the rest of the prompt; a `)` or `]` with nothing to close is literal text. `BREAK` (whole
    word, uppercase) becomes `("BREAK", -1.0)` and swallows the whitespace around it. Runs with equal weights are
    merged; an empty prompt is `[("", 1.0)]`.

    Differences from A1111, all on input it mishandles: a weight such as `(x:1.2.3)` that is not a number is read
    as literal text (A1111 raises ValueError); BREAK inside brackets stays a break (A1111 multiplies its marker
    weight, which turns it into the literal word "BREAK" with weight -1.1); empty pieces are left out.
    """
    builder = _AttentionBuilder()
    for match in _ATTENTION_RE.finditer(text):
        builder.feed(match)
    return builder.finish()


# ----------------------------------------------------------------------------------------------------------------
# Everything together


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
