"""The grammar of prompt editing and alternation: a prompt read into a tree of text, edits and alternations.

Why its own module: reading the brackets is the hard part of scheduling (edits nest, brackets that form no
construct are literal text, some prompts do not parse at all in A1111), and keeping it apart from the step
arithmetic in `prompt_schedule` lets each be read and tested on its own. The tree holds no step numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Nesting deeper than this is not a prompt anyone writes; stopping there keeps recursion far from Python's limit.
MAX_NESTING = 100


@dataclass(frozen=True)
class Edit:
    """`[before:after:when]`; `before` is None for the two-part form `[after:when]`."""

    before: Seq | None
    after: Seq
    when: str


@dataclass(frozen=True)
class Alternation:
    """`[a|b|c]`: option `(step - 1) % n` at each step."""

    options: tuple[Seq, ...]


@dataclass(frozen=True)
class Seq:
    """A run of literal text and constructs."""

    items: tuple[Node, ...] = ()


Node = str | Edit | Alternation | Seq

_PLAIN_RE = re.compile(r"(?:[^\\\[\]():|]|\\.)+")
_NUMBER = r"[+-]?(?:\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)"
_WHEN_TAIL_RE = re.compile(rf"\s*({_NUMBER})\s*\]")
_STRAY = frozenset("[]():")


class _TooDeep(Exception):
    """Nesting beyond MAX_NESTING: the prompt is then treated as one that does not parse."""


def parse_schedule_tree(text: str) -> Seq | None:
    """The prompt as a tree, or None where A1111's parser fails (stray `|`, trailing backslash, absurd nesting):
    such a prompt is not scheduled at all."""
    try:
        return _ScheduleGrammar(text).parse()
    except _TooDeep:
        return None


class _ScheduleGrammar:
    """Recursive-descent reading of A1111's lark grammar for prompt editing.

    Why not a plain regex: edits nest (`[a:[b:c:2]:5]`) and may hold emphasis. Why this shape: A1111's grammar
    lets any bracket that does not close a construct stand as literal text at the top level, and prefers the
    construct where one fits; a construct that starts at a given position has only one possible reading, so trying
    it once per bracket (memoised) and falling back to literal text is the same reading, in linear time.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.memo: dict[int, tuple[Node, int] | None] = {}

    def parse(self) -> Seq | None:
        """The whole prompt, or None where A1111's parser fails (stray `|`, trailing backslash)."""
        items: list[Node] = []
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
        return Seq(tuple(items))

    def construct(self, pos: int, depth: int) -> tuple[Node, int] | None:
        """The construct opening at `pos` (`(` or `[`) and the position after it, or None."""
        if depth > MAX_NESTING:
            raise _TooDeep
        if pos not in self.memo:
            self.memo[pos] = self._round(pos, depth) if self.text[pos] == "(" else self._square(pos, depth)
        return self.memo[pos]

    def sequence(self, pos: int, depth: int) -> tuple[Seq, int] | None:
        """A nested prompt from `pos` up to the next `)`, `]`, `:`, `|` or the end; None if a bracket fails."""
        items: list[Node] = []
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
        return Seq(tuple(items)), pos

    def _at(self, pos: int) -> str:
        return self.text[pos] if pos < len(self.text) else ""

    def _round(self, pos: int, depth: int) -> tuple[Node, int] | None:
        """`(x)` or `(x:y)`: emphasis, kept as literal text for scheduling purposes."""
        first = self.sequence(pos + 1, depth)
        if first is None:
            return None
        inner, pos = first
        if self._at(pos) == ")":
            return Seq(("(", inner, ")")), pos + 1
        if self._at(pos) != ":":
            return None
        second = self.sequence(pos + 1, depth)
        if second is None or self._at(second[1]) != ")":
            return None
        return Seq(("(", inner, ":", second[0], ")")), second[1] + 1

    def _square(self, pos: int, depth: int) -> tuple[Node, int] | None:
        """`[x]` (emphasis), `[a|b]` (alternation) or `[a:b:when]` / `[b:when]` (editing)."""
        first = self.sequence(pos + 1, depth)
        if first is None:
            return None
        inner, pos = first
        sep = self._at(pos)
        if sep == "]":
            return Seq(("[", inner, "]")), pos + 1
        if sep == "|":
            return self._alternation(inner, pos, depth)
        if sep == ":":
            return self._edit(inner, pos, depth)
        return None

    def _alternation(self, first: Seq, pos: int, depth: int) -> tuple[Node, int] | None:
        options = [first]
        while self._at(pos) == "|":
            found = self.sequence(pos + 1, depth)
            if found is None:
                return None
            options.append(found[0])
            pos = found[1]
        if self._at(pos) != "]":
            return None
        return Alternation(tuple(options)), pos + 1

    def _edit(self, first: Seq, colon: int, depth: int) -> tuple[Node, int] | None:
        tail = _WHEN_TAIL_RE.match(self.text, colon + 1)
        if tail:
            return Edit(None, first, tail.group(1)), tail.end()
        second = self.sequence(colon + 1, depth)
        if second is None or self._at(second[1]) != ":":
            return None
        tail = _WHEN_TAIL_RE.match(self.text, second[1] + 1)
        if tail is None:
            return None
        return Edit(first, second[0], tail.group(1)), tail.end()
