"""Tile geometry of the tiled img2img upscale ("Ultimate SD upscale"), the pure part.

Why pure: which rectangles are redrawn, in which order, and where the seam-fix masks go decides whether every
pixel is redrawn exactly once and whether seams land where the fixes are; that is plain integer arithmetic and is
tested here without a model. The engine draws the masks (`Patch.shape`) and runs img2img on each crop.

Conventions: rectangles are half-open `[left, right) x [top, bottom)` in pixels of the upscaled canvas. A tile grid
has `ceil(W / tile_w)` columns and `ceil(H / tile_h)` rows, tiles aligned at the top-left corner as in A1111's
extension; the last row/column is clipped to the canvas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SHAPE_RECT = "rect"          # the whole rectangle (blurred by the mask blur)
SHAPE_RAMP_X = "ramp x"      # 0 at the left and right edges, full in the middle column (a vertical seam)
SHAPE_RAMP_Y = "ramp y"      # 0 at the top and bottom edges, full in the middle row (a horizontal seam)
SHAPE_RADIAL = "radial"      # full at the centre, 0 at the inscribed ellipse (a seam intersection)
SHAPES = (SHAPE_RECT, SHAPE_RAMP_X, SHAPE_RAMP_Y, SHAPE_RADIAL)

STAGE_REDRAW = "redraw"
STAGE_SEAMS = "seams fix"


@dataclass(frozen=True)
class Rect:
    """A half-open pixel rectangle."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def clip(self, width: int, height: int) -> Rect:
        """The part inside a `width` x `height` canvas (may be empty)."""
        return Rect(max(0, self.left), max(0, self.top), min(width, self.right), min(height, self.bottom))

    def grow(self, by: int) -> Rect:
        return Rect(self.left - by, self.top - by, self.right + by, self.bottom + by)

    def as_box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), the box PIL's `crop` takes."""
        return self.left, self.top, self.right, self.bottom


@dataclass(frozen=True)
class Patch:
    """One img2img redraw. `rect` is the mask shape's full extent (it may reach past the canvas: a half-tile offset
    tile at the edge), `shape` how the mask is drawn over it, `cell` the (row, column) of the tile or seam."""

    rect: Rect
    shape: str
    stage: str
    cell: tuple[int, int]


@dataclass(frozen=True)
class TileGrid:
    """The redraw tiles of a canvas: `rows` x `columns` tiles of `tile` = (width, height)."""

    size: tuple[int, int]
    tile: tuple[int, int]

    @property
    def columns(self) -> int:
        return math.ceil(self.size[0] / self.tile[0])

    @property
    def rows(self) -> int:
        return math.ceil(self.size[1] / self.tile[1])

    def rect(self, row: int, column: int) -> Rect:
        """Tile (row, column), clipped to the canvas."""
        width, height = self.tile
        return Rect(column * width, row * height, (column + 1) * width, (row + 1) * height).clip(*self.size)

    def cells(self) -> list[tuple[int, int]]:
        """Every (row, column), row-major."""
        return [(row, column) for row in range(self.rows) for column in range(self.columns)]


def is_white(row: int, column: int) -> bool:
    """The chessboard colour of a tile: the top-left tile is white, neighbours alternate (A1111's "Chess")."""
    return (row + column) % 2 == 0


def redraw_passes(grid: TileGrid, mode: str) -> tuple[tuple[Patch, ...], ...]:
    """The redraw tiles grouped in passes. "Linear": one pass, row by row. "Chess": the white squares, then the
    black ones, so no tile is redrawn next to a neighbour redrawn in the same pass. "None": no redraw."""
    def patch(cell: tuple[int, int]) -> Patch:
        return Patch(grid.rect(*cell), SHAPE_RECT, STAGE_REDRAW, cell)

    cells = grid.cells()
    if mode == "Linear":
        return (tuple(patch(cell) for cell in cells),)
    if mode == "Chess":
        return (tuple(patch(cell) for cell in cells if is_white(*cell)),
                tuple(patch(cell) for cell in cells if not is_white(*cell)))
    if mode == "None":
        return ()
    raise ValueError(f"unknown redraw mode {mode!r}")


def band_patches(grid: TileGrid, band_width: int) -> tuple[Patch, ...]:
    """"Band pass": one band `band_width` wide centred on every inner seam, across the whole canvas; the vertical
    seams first (cell = (0, column right of the seam)), then the horizontal ones (cell = (row below, 0))."""
    width, height = grid.size
    tile_w, tile_h = grid.tile
    half = band_width // 2
    vertical = tuple(Patch(Rect(c * tile_w - half, 0, c * tile_w - half + band_width, height), SHAPE_RAMP_X,
                           STAGE_SEAMS, (0, c)) for c in range(1, grid.columns))
    horizontal = tuple(Patch(Rect(0, r * tile_h - half, width, r * tile_h - half + band_width), SHAPE_RAMP_Y,
                             STAGE_SEAMS, (r, 0)) for r in range(1, grid.rows))
    return vertical + horizontal


def half_tile_patches(grid: TileGrid, intersections: bool = False) -> tuple[Patch, ...]:
    """"Half tile offset pass": tiles shifted by half a tile so that each one is centred on a seam, its mask
    fading to 0 at the tile's own edges: first those across the horizontal seams, then those across the vertical
    ones; with `intersections` then one round patch on every point where four tiles meet."""
    tile_w, tile_h = grid.tile

    def shifted(row: int, column: int, dx: int, dy: int) -> Rect:
        left, top = column * tile_w + dx, row * tile_h + dy
        return Rect(left, top, left + tile_w, top + tile_h)

    across_rows = tuple(Patch(shifted(r, c, 0, tile_h // 2), SHAPE_RAMP_Y, STAGE_SEAMS, (r, c))
                        for r in range(grid.rows - 1) for c in range(grid.columns))
    across_columns = tuple(Patch(shifted(r, c, tile_w // 2, 0), SHAPE_RAMP_X, STAGE_SEAMS, (r, c))
                           for r in range(grid.rows) for c in range(grid.columns - 1))
    corners = tuple(Patch(shifted(r, c, tile_w // 2, tile_h // 2), SHAPE_RADIAL, STAGE_SEAMS, (r, c))
                    for r in range(grid.rows - 1) for c in range(grid.columns - 1)) if intersections else ()
    return across_rows + across_columns + corners


def seam_lines(grid: TileGrid) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The x positions of the vertical seams and the y positions of the horizontal ones (inner tile edges)."""
    tile_w, tile_h = grid.tile
    return (tuple(c * tile_w for c in range(1, grid.columns)), tuple(r * tile_h for r in range(1, grid.rows)))


def crop_region(area: Rect, padding: int, size: tuple[int, int], multiple: int = 8) -> Rect:
    """The crop img2img processes for a mask covering `area`: the area plus `padding` pixels of context on each
    side, clipped to the canvas, then grown (evenly, shifted back inside the canvas where needed) to a multiple of
    `multiple` so the crop is generated at its own size, with no resampling on the way in or out."""
    width, height = size
    padded = area.grow(padding).clip(width, height)

    def fit(start: int, end: int, limit: int) -> tuple[int, int]:
        length = min(limit, math.ceil((end - start) / multiple) * multiple)
        start -= (length - (end - start)) // 2
        start = max(0, min(start, limit - length))
        return start, start + length

    left, right = fit(padded.left, padded.right, width)
    top, bottom = fit(padded.top, padded.bottom, height)
    return Rect(left, top, right, bottom)
