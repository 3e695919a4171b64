"""The X/Y/Z plot's plan: one request expanded into a grid of cell requests, and the order to run them in.

Why pure and here: the plot is "the same request with one thing changed per cell", which is exactly
`dataclasses.replace` over a frozen `GenerationRequest` (docs/ARCHITECTURE.md). Keeping expansion free of torch
and Gradio lets the UI, the API (`script_name`/`script_args`) and the tests share it, and lets the order in which
cells run (few model switches) be decided and tested without a model. Axis types live in `xyz_axis_types`, the
value syntax in `xyz_values`, one axis's parsing in `xyz_axes`.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from webui.core.errors import ValidationError
from webui.core.limits import LIMITS, check_script_size
from webui.core.requests import GenerationRequest
from webui.core.resolve import fix_seeds, system_seeds
from webui.core.script_results import infotext_with_params
from webui.core.seeds import MAX_SEED
from webui.core.xyz_axes import Axis, AxisInput, fix_axis_seeds, parse_axis

SCRIPT_NAME = "X/Y/Z plot"


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
        parsed = [fix_axis_seeds(axis, rng) for axis in parsed]
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
