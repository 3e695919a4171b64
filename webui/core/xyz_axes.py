"""One X/Y/Z axis as the user gave it, and as parsed: its type and its values.

Why its own module: parsing an axis joins the type table and the value syntax, with the limits on picks and text
and the error messages that name the axis; fixing a seed axis's -1 values happens here too, so the plan only
combines axes that are already concrete.
"""
from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from typing import Any

from webui.core.errors import ValidationError
from webui.core.limits import LIMITS
from webui.core.resolve import concrete_seed
from webui.core.xyz_axis_types import NOTHING, AxisType, axis_type
from webui.core.xyz_values import (
    MAX_AXIS_VALUES,
    check_value_count,
    join_csv,
    parse_float_values,
    parse_int_values,
    split_csv,
)


@dataclass(frozen=True)
class AxisInput:
    """What the user gave for one axis: its type, the typed values and, for enumerable axes, picked values
    (picks win over typed text when both are given, as A1111's dropdowns do)."""

    type: str = NOTHING
    values: str = ""
    picks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Axis:
    """A parsed axis. `text` is recorded in the grid infotext as `X Values`; `fixed` as `Fixed X Values` when
    random seeds were fixed."""

    type: AxisType
    values: tuple[Any, ...]
    text: str = ""
    fixed: str = ""

    @property
    def used(self) -> bool:
        return self.type.label != NOTHING

    def legends(self) -> tuple[str, ...]:
        return tuple(self.type.legend(value) for value in self.values) if self.used else ("",)


def parse_axis(given: AxisInput, name: str = "X") -> Axis:
    """Parse one axis; `ValidationError` (naming the axis) for a bad or empty value list."""
    kind = axis_type(given.type)
    if kind.label == NOTHING:
        return Axis(kind, (None,))
    if len(given.picks) > MAX_AXIS_VALUES or \
            len(given.values or "") + sum(len(str(pick)) for pick in given.picks) > LIMITS.max_axis_text:
        raise ValidationError(f"{name} axis ({kind.label}): too many values; an axis takes at most "
                              f"{MAX_AXIS_VALUES} values in at most {LIMITS.max_axis_text:,} characters.")
    picks = [pick for pick in given.picks if str(pick).strip()]
    text = join_csv(picks) if picks else (given.values or "").strip()
    try:
        values = _parse_values(kind, list(picks) if picks else None, text)
    except ValidationError as exc:
        raise ValidationError(f"{name} axis ({kind.label}): {exc}") from None
    if not values:
        raise ValidationError(f"{name} axis ({kind.label}) has no values.")
    return Axis(kind, tuple(values), text)


def _parse_values(kind: AxisType, picks: list[str] | None, text: str) -> list[Any]:
    if kind.kind == "int":
        return parse_int_values(join_csv(picks) if picks else text)
    if kind.kind == "float":
        return parse_float_values(join_csv(picks) if picks else text)
    items = picks if picks is not None else split_csv(text)
    check_value_count(items)
    if kind.kind == "order":
        if len(items) > 6:
            raise ValidationError("Prompt order takes at most 6 terms (720 orders).")
        return list(itertools.permutations(items))
    return items


def fix_axis_seeds(axis: Axis, rng: random.Random) -> Axis:
    """-1 on a seed axis becomes one fixed random seed, recorded as `Fixed X Values` (A1111)."""
    if not axis.type.seed:
        return axis
    values = tuple(concrete_seed(int(v), rng) for v in axis.values)
    return dataclasses.replace(axis, values=values, fixed=", ".join(str(v) for v in values))
