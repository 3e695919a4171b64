"""A1111's value syntax for an X/Y/Z axis: comma lists and number ranges, read into values.

Why its own module: this is text parsing with its own rules and limits (quotes, ranges with a step or a count, a
typo such as `1-100000` failing fast), independent of what an axis does with its values. The epoch comparison
writes axis text with `join_csv` too.

Syntax: a CSV list (`"a, b","c"` keeps commas inside quotes); for number axes also ranges `1-5`, `1-10 (+2)`
(step), `1-10 [5]` (count, evenly spaced) and float versions `0.5-1 (+0.25)`, `0-1 [5]`.
"""
from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Sequence
from typing import Any

from webui.core.errors import ValidationError
from webui.core.infotext import format_float
from webui.core.limits import LIMITS

MAX_AXIS_VALUES = LIMITS.max_axis_values  # a typo such as `1-100000` must fail fast, not build a million requests


def split_csv(text: str) -> list[str]:
    """A1111's comma list: CSV with quotes (`"a, b","c"`), spaces after commas ignored, items stripped, empty
    items dropped; new lines separate items too."""
    rows = csv.reader(io.StringIO(text or ""), skipinitialspace=True)
    return [item.strip() for item in itertools.chain.from_iterable(rows) if item.strip()]


def join_csv(values: Sequence[str]) -> str:
    """The inverse of `split_csv`: quotes only the items that need it (as A1111 writes picked values)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([str(v) for v in values])
    return out.getvalue()


_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*(?:\d+(?:\.\d*)?|\.\d+)"
INT_RANGE_RE = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(\s*({_INT})\s*\))?\s*")
INT_COUNT_RE = re.compile(rf"\s*({_INT})\s*-\s*({_INT})\s*\[\s*(\d+)\s*\]\s*")
FLOAT_RANGE_RE = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(\s*({_FLOAT})\s*\))?\s*")
FLOAT_COUNT_RE = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[\s*(\d+)\s*\]\s*")


def _number(text: str) -> str:
    return text.replace(" ", "")


def _check_length(count: int, item: str) -> None:
    if count > MAX_AXIS_VALUES:
        raise ValidationError(f"The range '{item}' makes {count} values; an axis takes at most {MAX_AXIS_VALUES}.")


def check_value_count(values: Sequence[Any]) -> None:
    """Called after each item, so a long list (or many ranges) stops at the first value over the limit."""
    if len(values) > MAX_AXIS_VALUES:
        raise ValidationError(f"More than {MAX_AXIS_VALUES} values; an axis takes at most {MAX_AXIS_VALUES}.")


def _stepped(start: float, end: float, step: float | None, item: str) -> list[float]:
    """`start`..`end` inclusive by `step` (default 1 towards `end`); a step pointing away from `end` is an error."""
    if step is None:
        step = 1.0 if end >= start else -1.0
    if step == 0 or (end - start) * step < 0:
        raise ValidationError(f"The range '{item}' never reaches its end with step {format_float(float(step))}.")
    count = int((end - start) / step + 1e-9) + 1
    _check_length(count, item)
    return [start + i * step for i in range(count)]


def _spaced(start: float, end: float, count: int, item: str) -> list[float]:
    """`count` evenly spaced values from `start` to `end`, both included (numpy's linspace)."""
    if count < 1:
        raise ValidationError(f"The range '{item}' asks for no values.")
    _check_length(count, item)
    if count == 1:
        return [start]
    return [start + (end - start) * i / (count - 1) for i in range(count)]


def parse_int_values(text: str) -> list[int]:
    """Whole numbers and integer ranges: `1-5`, `1-10 (+2)`, `10-1 (-3)`, `1-10 [5]` (counts are truncated to
    whole numbers like A1111: 1, 3, 5, 7, 10)."""
    values: list[int] = []
    for item in split_csv(text):
        if (match := INT_COUNT_RE.fullmatch(item)) is not None:
            start, end, count = int(_number(match[1])), int(_number(match[2])), int(match[3])
            values += [int(v) for v in _spaced(start, end, count, item)]
        elif (match := INT_RANGE_RE.fullmatch(item)) is not None:
            step = int(_number(match[3])) if match[3] else None
            values += [round(v) for v in _stepped(int(_number(match[1])), int(_number(match[2])), step, item)]
        else:
            values.append(_to_int(item))
        check_value_count(values)
    return values


def parse_float_values(text: str) -> list[float]:
    """Numbers and ranges: `0.5-1 (+0.25)`, `0-1 [5]`. Results are rounded to 10 places so that 0.1 steps read
    0.3, not 0.30000000000000004, in legends and infotexts."""
    values: list[float] = []
    for item in split_csv(text):
        if (match := FLOAT_COUNT_RE.fullmatch(item)) is not None:
            values += _spaced(float(_number(match[1])), float(_number(match[2])), int(match[3]), item)
        elif (match := FLOAT_RANGE_RE.fullmatch(item)) is not None:
            step = float(_number(match[3])) if match[3] else None
            values += _stepped(float(_number(match[1])), float(_number(match[2])), step, item)
        else:
            values.append(_to_float(item))
        check_value_count(values)
    return [round(v, 10) for v in values]


def _to_int(item: str) -> int:
    try:
        number = float(item)
    except ValueError:
        raise ValidationError(f"'{item}' is not a whole number or a range such as 1-5.") from None
    if not number.is_integer():
        raise ValidationError(f"'{item}' is not a whole number.")
    return int(number)


def _to_float(item: str) -> float:
    try:
        return float(item)
    except ValueError:
        raise ValidationError(f"'{item}' is not a number or a range such as 0.5-1 (+0.25).") from None
