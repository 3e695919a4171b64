"""Prompt matrix, the pure part: `a|b|c` -> one request per combination of the optional parts, and the legends.

Why: the first part is always used and every later part is either in or out, so n parts give 2^(n-1) images. The
combination number's bits say which parts are in; the low half of the bits picks the grid column and the high half
the row, so the grid reads like A1111's (columns toggle the first optional parts, rows the rest).
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

from webui.core.errors import ValidationError
from webui.core.infotext import build_infotext, parse_infotext
from webui.core.requests import GenerationRequest
from webui.core.resolve import fix_seeds, system_seeds
from webui.core.script_results import Legend
from webui.core.seeds import MAX_SEED

SCRIPT_NAME = "Prompt matrix"
PROMPT_TYPES = ("positive", "negative")
SEPARATORS = {"comma": ", ", "space": " "}
MAX_OPTIONAL_PARTS = 10  # 1024 images


@dataclass(frozen=True)
class PromptMatrixOptions:
    """A1111's options: where the optional parts go, one seed per image or the same seed, which prompt is split,
    the separator used to join the parts, and the gap between grid cells."""

    put_at_start: bool = False
    different_seeds: bool = False
    prompt_type: str = "positive"
    separator: str = "comma"
    margin_size: int = 0

    def validate(self) -> None:
        if self.prompt_type not in PROMPT_TYPES:
            raise ValidationError(f"Prompt matrix: prompt type must be positive or negative, not '{self.prompt_type}'.")
        if self.separator not in SEPARATORS:
            raise ValidationError(f"Prompt matrix: separator must be comma or space, not '{self.separator}'.")


@dataclass(frozen=True)
class PromptMatrixPlan:
    """Requests in combination order (row-major in the grid), the grid's shape and its legends."""

    parts: tuple[str, ...]
    requests: tuple[GenerationRequest, ...]
    columns: int
    rows: int
    column_legends: tuple[tuple[Legend, ...], ...]
    row_legends: tuple[tuple[Legend, ...], ...]
    options: PromptMatrixOptions
    original_prompt: str = ""

    def grid_infotext(self, cell_infotext: str) -> str:
        """The first cell's infotext with the matrix prompt (`a|b|c`) in place of its own, and `Script: Prompt
        matrix`, so sending the grid to txt2img brings the whole matrix back."""
        parsed = parse_infotext(cell_infotext)
        prompt, negative = parsed.prompt, parsed.negative_prompt
        if self.options.prompt_type == "positive":
            prompt = self.original_prompt
        else:
            negative = self.original_prompt
        return build_infotext(prompt, negative, {**parsed.params, "Script": SCRIPT_NAME})


def split_parts(prompt: str) -> list[str]:
    """`a|b, |c` -> ["a", "b", "c"]: parts stripped of spaces and the commas that separated them."""
    return [part.strip().strip(",").strip() for part in prompt.split("|")]


def combination_prompt(parts: list[str], number: int, options: PromptMatrixOptions) -> str:
    """The prompt of combination `number`: the first part plus the optional parts whose bit is set."""
    chosen = [part for bit, part in enumerate(parts[1:]) if number & (1 << bit) and part]
    ordered = [*chosen, parts[0]] if options.put_at_start else [parts[0], *chosen]
    return SEPARATORS[options.separator].join(part for part in ordered if part)


def _legends(parts: list[str], count: int) -> tuple[tuple[Legend, ...], ...]:
    """For each of the 2^len(parts) positions along one side, every part, active when its bit is set."""
    return tuple(tuple(Legend(part, bool(position & (1 << bit))) for bit, part in enumerate(parts))
                 for position in range(1 << count))


def expand_prompt_matrix(base: GenerationRequest, options: PromptMatrixOptions | None = None,
                         rng: random.Random | None = None) -> PromptMatrixPlan:
    """One request per combination (one image each). The seed is fixed once; with "different seeds" combination
    i gets seed + i."""
    options = options or PromptMatrixOptions()
    options.validate()
    source = base.prompt if options.prompt_type == "positive" else base.negative_prompt
    parts = split_parts(source)
    optional = len(parts) - 1
    if optional > MAX_OPTIONAL_PARTS:
        raise ValidationError(f"Prompt matrix: {optional} optional parts would make {2 ** optional} images; "
                              f"use at most {MAX_OPTIONAL_PARTS}.")
    fixed = fix_seeds(base, rng or system_seeds())
    seed, subseed = fixed.seed, fixed.subseed
    requests = []
    for number in range(2 ** optional):
        text = combination_prompt(parts, number, options)
        prompt_field = "prompt" if options.prompt_type == "positive" else "negative_prompt"
        requests.append(dataclasses.replace(base, **{prompt_field: text}, batch_size=1, n_iter=1, subseed=subseed,
                                            seed=(seed + (number if options.different_seeds else 0)) % (MAX_SEED + 1)))
    across = math.ceil(optional / 2)
    return PromptMatrixPlan(tuple(parts), tuple(requests), columns=1 << across, rows=1 << (optional - across),
                            column_legends=_legends(parts[1:1 + across], across),
                            row_legends=_legends(parts[1 + across:], optional - across), options=options,
                            original_prompt=source)
