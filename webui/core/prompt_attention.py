"""Attention weights in a prompt: `(x)`, `[x]`, `(x:1.3)`, escapes and BREAK, read as A1111 reads them.

Why its own module: this is the last step of prompt parsing and the only one the token counter and the infotext
reader need on their own (they weigh text that is already scheduled), so they can use it without the scheduling
grammar. It knows nothing of steps, AND or extra networks.
"""
from __future__ import annotations

import re

Piece = tuple[str, float]
"""One run of prompt text and its attention weight; `("BREAK", -1.0)` marks a chunk break."""

BREAK_TEXT = "BREAK"
BREAK_WEIGHT = -1.0
ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1


def is_break(piece: Piece) -> bool:
    """Whether a piece from `parse_attention` is the BREAK marker (start a new 75-token chunk)."""
    return piece[0] == BREAK_TEXT and piece[1] == BREAK_WEIGHT


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
