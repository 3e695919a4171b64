"""X/Y/Z plot, the pure part: axis types, A1111's value syntax, and one request expanded into a grid of requests.

Why pure and here: the plot is "the same request with one thing changed per cell", which is exactly
`dataclasses.replace` over a frozen `GenerationRequest` (docs/ARCHITECTURE.md). Keeping parsing and expansion free
of torch and Gradio lets the UI, the API (`script_name`/`script_args`) and the tests share it, and lets the order in
which cells run (few model switches) be decided and tested without a model.

Value syntax (A1111's): a CSV list (`"a, b","c"` keeps commas inside quotes); for number axes also ranges `1-5`,
`1-10 (+2)` (step), `1-10 [5]` (count, evenly spaced) and float versions `0.5-1 (+0.25)`, `0-1 [5]`.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from webui.core.errors import ValidationError
from webui.core.infotext import build_infotext, format_float, parse_infotext
from webui.core.limits import LIMITS, check_script_size
from webui.core.requests import GenerationRequest
from webui.core.resolve import concrete_seed, fix_seeds, system_seeds
from webui.core.results import GeneratedImage
from webui.core.seeds import MAX_SEED

SCRIPT_NAME = "X/Y/Z plot"
NOTHING = "Nothing"
MAX_AXIS_VALUES = LIMITS.max_axis_values  # a typo such as `1-100000` must fail fast, not build a million requests

# Names of the enumerable lists a UI offers as pickers; the services facade knows what each one holds.
CHOICES_SAMPLERS = "samplers"
CHOICES_SCHEDULES = "schedule types"
CHOICES_CHECKPOINTS = "checkpoints"
CHOICES_VAES = "vaes"
CHOICES_STYLES = "styles"
CHOICES_HIRES_UPSCALERS = "hires upscalers"

Apply = Callable[[GenerationRequest, Any, Sequence[Any]], GenerationRequest]


# ----------------------------------------------------------------------------------------------------------------
# Results and legends shared by both scripts


@dataclass(frozen=True)
class Legend:
    """One line of a grid legend. Inactive lines (a prompt-matrix part left out) are drawn grey and struck out."""

    text: str
    active: bool = True


@dataclass(frozen=True)
class ScriptResult:
    """What a script run returns. It answers like a `GenerationResult` (`images`, `infotexts`, `seeds`,
    `interrupted`, `warnings`) so the txt2img tab shows it without special cases: grids first, then the cells'
    own images when "Include sub-images" is on. `sub_images` always holds every image the cells made."""

    script: str
    grids: tuple[GeneratedImage, ...]
    sub_images: tuple[GeneratedImage, ...]
    include_sub_images: bool = False
    interrupted: bool = False
    warnings: tuple[str, ...] = ()
    cells_done: int = 0
    cells_total: int = 0

    @property
    def images(self) -> tuple[GeneratedImage, ...]:
        return self.grids + (self.sub_images if self.include_sub_images else ())

    @property
    def infotexts(self) -> list[str]:
        return [image.infotext for image in self.images]

    @property
    def seeds(self) -> list[int]:
        return [image.seed for image in self.images]


def infotext_with_params(infotext: str, params: dict[str, str]) -> str:
    """A cell's infotext with the script's keys added (A1111 stores `Script`, `X Type`, `X Values` ... in a grid's
    infotext so the plot can be told apart and re-made). Parsed and rebuilt, so quoting stays valid."""
    parsed = parse_infotext(infotext)
    return build_infotext(parsed.prompt, parsed.negative_prompt, {**parsed.params, **params})


# ----------------------------------------------------------------------------------------------------------------
# Value syntax


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


def _check_total(values: Sequence[Any]) -> None:
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
        _check_total(values)
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
        _check_total(values)
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


# ----------------------------------------------------------------------------------------------------------------
# Axis types


def _field(name: str) -> Apply:
    """An axis that sets one request field to the cell's value."""
    return lambda request, value, _values: dataclasses.replace(request, **{name: value})


def _prompt_sr(request: GenerationRequest, value: str, values: Sequence[str]) -> GenerationRequest:
    """Prompt S/R: the first value is searched for and replaced by the cell's value, in both prompts (A1111).
    Plain text replacement, so `<lora:name:0.5>` -> `<lora:name:1>` or `<lora:ep-000002:1>` -> `...-000004:1>`
    compares LoRA weights and epochs."""
    return dataclasses.replace(request, prompt=request.prompt.replace(values[0], value),
                               negative_prompt=request.negative_prompt.replace(values[0], value))


def _prompt_order(request: GenerationRequest, order: tuple[str, ...], _values: Sequence[Any]) -> GenerationRequest:
    """Prompt order: the listed terms swap places in the prompt; the text between them stays where it was."""
    prompt = request.prompt
    found = sorted((prompt.find(term), term) for term in order)
    gaps: list[str] = []
    for _, term in found:
        index = prompt.find(term)
        gaps.append(prompt[:index])
        prompt = prompt[index + len(term):]
    rebuilt = "".join(gap + term for gap, term in zip(gaps, order, strict=True))
    return dataclasses.replace(request, prompt=rebuilt + prompt)


def _styles(request: GenerationRequest, value: str, _values: Sequence[Any]) -> GenerationRequest:
    """Styles: the cell's style names (comma-separated) are added to the request's styles."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    return dataclasses.replace(request, styles=(*request.styles, *names))


def _size(request: GenerationRequest, value: str, _values: Sequence[Any]) -> GenerationRequest:
    """Size: `WxH`, or one number for a square."""
    width, _, height = value.lower().partition("x")
    try:
        w = int(width.strip())
        h = int(height.strip()) if height.strip() else w
    except ValueError:
        raise ValidationError(f"Size '{value}' is not of the form 512x768.") from None
    return dataclasses.replace(request, width=w, height=h)


def _seed(name: str) -> Apply:
    return lambda request, value, _values: dataclasses.replace(request, **{name: int(value)})


@dataclass(frozen=True)
class AxisType:
    """One kind of axis. `kind` says how values are parsed: "int"/"float" (ranges allowed), "str" (CSV items) or
    "order" (the items' permutations). `choices` names the list a UI offers as pickers. `cost` is how expensive a
    change of value is between two cells (model loads), used to run cells grouped. `named` legends read
    "Steps: 20"; others show the bare value ("Euler a")."""

    label: str
    kind: str
    apply: Apply
    named: bool = True
    choices: str | None = None
    cost: float = 0.0
    note: str = ""
    seed: bool = False

    def legend(self, value: Any) -> str:
        if isinstance(value, tuple):
            text = ", ".join(value)
        elif isinstance(value, float):
            text = format_float(value)
        elif self.choices == CHOICES_CHECKPOINTS:
            text = checkpoint_label(str(value))
        else:
            text = str(value)
        return f"{self.label}: {text}" if self.named else text


_HIRES_NOTE = "Used only when Hires fix is on."

AXIS_TYPES: tuple[AxisType, ...] = (
    AxisType(NOTHING, "str", lambda request, _value, _values: request, named=False),
    AxisType("Seed", "int", _seed("seed"), seed=True),
    AxisType("Var. seed", "int", _seed("subseed"), seed=True),
    AxisType("Var. strength", "float", _field("subseed_strength")),
    AxisType("Steps", "int", _field("steps")),
    AxisType("Hires steps", "int", _field("hr_second_pass_steps"), note=_HIRES_NOTE),
    AxisType("CFG Scale", "float", _field("cfg_scale")),
    AxisType("Prompt S/R", "str", _prompt_sr, named=False),
    AxisType("Prompt order", "order", _prompt_order, named=False),
    AxisType("Sampler", "str", _field("sampler_name"), named=False, choices=CHOICES_SAMPLERS),
    AxisType("Schedule type", "str", _field("scheduler"), choices=CHOICES_SCHEDULES),
    AxisType("Checkpoint name", "str", _field("checkpoint"), named=False, choices=CHOICES_CHECKPOINTS, cost=1.0),
    AxisType("VAE", "str", _field("vae"), named=False, choices=CHOICES_VAES, cost=0.7),
    AxisType("Clip skip", "int", _field("clip_skip")),
    AxisType("Denoising", "float", _field("denoising_strength"),
             note="Used by img2img, and by txt2img only when Hires fix is on."),
    AxisType("Hires upscaler", "str", _field("hr_upscaler"), choices=CHOICES_HIRES_UPSCALERS, note=_HIRES_NOTE),
    AxisType("Styles", "str", _styles, named=False, choices=CHOICES_STYLES),
    AxisType("Size", "str", _size),
)
_BY_LABEL = {axis.label.lower(): axis for axis in AXIS_TYPES}


def axis_type(label: str | None) -> AxisType:
    """An axis type by its label (case-insensitive; empty means Nothing); `ValidationError` if unknown."""
    found = _BY_LABEL.get((label or NOTHING).strip().lower())
    if found is None:
        raise ValidationError(f"Unknown X/Y/Z axis type '{label}'. Known: {', '.join(axis_type_labels())}.")
    return found


def axis_type_labels() -> list[str]:
    return [axis.label for axis in AXIS_TYPES]


def checkpoint_label(title: str) -> str:
    """A checkpoint title as a legend: no folder, no extension, no ` [hash]`."""
    name = re.sub(r"\s*\[[0-9a-fA-F]{8,}\]$", "", title).replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"\.(safetensors|ckpt|pt|pth|bin)$", "", name, flags=re.IGNORECASE)


# ----------------------------------------------------------------------------------------------------------------
# Axes


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
    _check_total(items)
    if kind.kind == "order":
        if len(items) > 6:
            raise ValidationError("Prompt order takes at most 6 terms (720 orders).")
        return list(itertools.permutations(items))
    return items


def _fix_seeds(axis: Axis, rng: random.Random) -> Axis:
    """-1 on a seed axis becomes one fixed random seed, recorded as `Fixed X Values` (A1111)."""
    if not axis.type.seed:
        return axis
    values = tuple(concrete_seed(int(v), rng) for v in axis.values)
    return dataclasses.replace(axis, values=values, fixed=", ".join(str(v) for v in values))


# ----------------------------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class XyzOptions:
    """A1111's X/Y/Z options. `keep_random_seeds` is "Keep -1 for seeds"; `vary_seeds` adds the cell's index along
    X, Y, Z to the seed so each column/row/grid gets its own seed."""

    draw_legend: bool = True
    include_sub_images: bool = False
    include_sub_grids: bool = False
    keep_random_seeds: bool = False
    vary_seeds: tuple[bool, bool, bool] = (False, False, False)
    margin_size: int = 0


@dataclass(frozen=True)
class GridCell:
    """One cell: its request and its place (x, y, z) in the grids."""

    request: GenerationRequest
    position: tuple[int, int, int]


@dataclass(frozen=True)
class XyzPlan:
    """The expanded plot. `cells` are in grid order (z, then y, then x); run them in `run_order(...)`."""

    axes: tuple[Axis, Axis, Axis]
    options: XyzOptions
    cells: tuple[GridCell, ...] = field(default_factory=tuple)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(len(axis.values) for axis in self.axes)  # type: ignore[return-value]

    def grid_params(self) -> dict[str, str]:
        """The keys a grid's infotext records: `Script`, then `X Type`, `X Values` (and `Fixed X Values`) ...."""
        params = {"Script": SCRIPT_NAME}
        for letter, axis in zip("XYZ", self.axes, strict=True):
            if not axis.used:
                continue
            params[f"{letter} Type"] = axis.type.label
            params[f"{letter} Values"] = axis.text
            if axis.fixed:
                params[f"Fixed {letter} Values"] = axis.fixed
        return params

    def grid_infotext(self, cell_infotext: str) -> str:
        """A grid's infotext: its first cell's, plus the script and axes (parses back with `parse_infotext`)."""
        return infotext_with_params(cell_infotext, self.grid_params())

    def run_order(self, current_checkpoint: str | None = None, current_vae: str | None = None) -> list[GridCell]:
        """Cells grouped so models switch as rarely as possible: all cells of one checkpoint together, within it
        all cells of one VAE together. The loaded checkpoint/VAE (or "keep current", None) runs last, so the plot
        ends on the model it started with and nothing has to be re-loaded afterwards."""
        checkpoint_rank = _ranks([cell.request.checkpoint for cell in self.cells], current_checkpoint)
        vae_rank = _ranks([cell.request.vae for cell in self.cells], current_vae)
        groups = len(set(checkpoint_rank.values()))

        def key(indexed: tuple[int, GridCell]) -> tuple[int, int, int]:
            index, cell = indexed
            group = checkpoint_rank[cell.request.checkpoint]
            vae = vae_rank[cell.request.vae]
            # Alternate the VAE order per checkpoint so that the VAE in use when a group ends starts the next one.
            return group, vae if (groups - 1 - group) % 2 == 0 else -vae, index

        return [cell for _, cell in sorted(enumerate(self.cells), key=key)]


def _ranks(values: list[str | None], current: str | None) -> dict[str | None, int]:
    """Rank of each distinct value in first-seen order, with None and the current value ranked last."""
    ordered = list(dict.fromkeys(values))
    last = [v for v in ordered if v is None or v == current]
    first = [v for v in ordered if v not in last]
    return {value: rank for rank, value in enumerate(first)} | {value: len(first) for value in last}


def expand_xyz(base: GenerationRequest, axes: Sequence[AxisInput], options: XyzOptions | None = None,
               rng: random.Random | None = None) -> XyzPlan:
    """Base request + up to three axes -> every cell's request, via `dataclasses.replace`.

    Unless "Keep -1 for seeds" is on, a random base seed (and variation seed) is fixed once, so cells differ only
    by their axes, and -1 on a Seed axis becomes a fixed random seed.
    """
    options = options or XyzOptions()
    given = list(axes) + [AxisInput()] * (3 - len(axes))
    parsed = [parse_axis(axis, name) for axis, name in zip(given[:3], "XYZ", strict=True)]
    if not options.keep_random_seeds:
        rng = rng or system_seeds()
        parsed = [_fix_seeds(axis, rng) for axis in parsed]
        base = fix_seeds(base, rng)
    _check_prompt_axes(base, parsed)
    x_axis, y_axis, z_axis = parsed
    check_plan_size(base, [len(axis.values) for axis in parsed])
    cells = [GridCell(_cell_request(base, parsed, (ix, iy, iz), options), (ix, iy, iz))
             for iz in range(len(z_axis.values)) for iy in range(len(y_axis.values))
             for ix in range(len(x_axis.values))]
    return XyzPlan((x_axis, y_axis, z_axis), options, tuple(cells))


def check_plan_size(base: GenerationRequest, lengths: Sequence[int]) -> None:
    """Refuse a plot with too many cells or images, from the axis lengths alone (before any cell exists)."""
    cells = lengths[0] * lengths[1] * lengths[2]
    if cells > LIMITS.max_xyz_cells:
        raise ValidationError(f"X/Y/Z plot: {' x '.join(str(n) for n in lengths)} makes {cells} cells; a plot has at "
                              f"most {LIMITS.max_xyz_cells}. Use fewer values.")
    check_script_size(SCRIPT_NAME, cells, base.batch_size * base.n_iter)


def _check_prompt_axes(base: GenerationRequest, axes: list[Axis]) -> None:
    """Fail before anything runs when a Prompt S/R or Prompt order axis names text the prompt does not have."""
    for axis in axes:
        if axis.type.label == "Prompt S/R":
            search = axis.values[0]
            if search not in base.prompt and search not in base.negative_prompt:
                raise ValidationError(f"Prompt S/R did not find '{search}' in the prompt or negative prompt. The "
                                      f"first value is the text to replace.")
        elif axis.type.label == "Prompt order":
            missing = [term for term in axis.values[0] if term not in base.prompt]
            if missing:
                raise ValidationError(f"Prompt order: {', '.join(repr(t) for t in missing)} not found in the prompt.")


def _cell_request(base: GenerationRequest, axes: list[Axis], position: tuple[int, int, int],
                  options: XyzOptions) -> GenerationRequest:
    request = base
    for axis, index in zip(axes, position, strict=True):
        request = axis.type.apply(request, axis.values[index], axis.values)
    return _varied_seed(request, axes, position, options)


def _varied_seed(request: GenerationRequest, axes: list[Axis], position: tuple[int, int, int],
                 options: XyzOptions) -> GenerationRequest:
    """A1111's "Vary seeds for X/Y/Z": seed + index along each chosen axis, in grid order."""
    if request.seed < 0 or not any(options.vary_seeds):
        return request
    offset, stride = 0, 1
    for vary, axis, index in zip(options.vary_seeds, axes, position, strict=True):
        size = len(axis.values) if vary else 1
        offset += index * stride if vary else 0
        stride *= size
    return dataclasses.replace(request, seed=(request.seed + offset) % (MAX_SEED + 1))
