"""Grid images for scripts (X/Y/Z plot, Prompt matrix): cells side by side, legends above and to the left, saved to
the grids folder with an infotext.

Why here and UI-free: a grid is an image operation the UI, the API and tests all need; it takes plain images and
legend text. Legends must stay readable: the font comes from the system (DejaVu and friends, found by Pillow's own
font search) or Pillow's built-in scalable font; nothing is downloaded. Long legends wrap at word boundaries, and a
word wider than its cell is broken, so text never runs into the next column.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from webui.core.script_results import Legend
from webui.engine.output.png import save_image

SYSTEM_FONTS = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf", "FreeSans.ttf",
                "NotoSans-Regular.ttf")
MIN_FONT_SIZE = 12
ACTIVE = (0, 0, 0)
INACTIVE = (153, 153, 153)
BLANK_CELL = (128, 128, 128)  # a cell the plot never reached (interrupted)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=16)
def legend_font(size: int) -> Font:
    """A system TrueType font at `size` px, else Pillow's bundled default (scalable since Pillow 10.1)."""
    for name in SYSTEM_FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def font_size_for(cell_width: int, cell_height: int) -> int:
    """A1111's size rule ((w + h) / 25, 40 px for 512x512 cells) with a floor that keeps small grids legible."""
    return max(MIN_FONT_SIZE, (cell_width + cell_height) // 25)


# ----------------------------------------------------------------------------------------------------------------
# Text layout


@dataclass(frozen=True)
class _Line:
    text: str
    active: bool
    width: int


def wrap_text(text: str, font: Font, max_width: int) -> list[str]:
    """Greedy word wrap to `max_width` pixels; a single word that is too wide is cut between characters."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and measure.textlength(candidate, font=font) <= max_width:
            lines[-1] = candidate
            continue
        lines += _break_word(word, font, max_width, measure)
    return lines or [""]


def _break_word(word: str, font: Font, max_width: int, measure: ImageDraw.ImageDraw) -> list[str]:
    pieces = [""]
    for char in word:
        if pieces[-1] and measure.textlength(pieces[-1] + char, font=font) > max_width:
            pieces.append("")
        pieces[-1] += char
    return pieces


def _layout(legends: Sequence[Legend], font: Font, max_width: int) -> list[_Line]:
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = []
    for legend in legends:
        for text in wrap_text(legend.text, font, max_width):
            lines.append(_Line(text, legend.active, int(measure.textlength(text, font=font))))
    return lines


def _line_height(font: Font) -> int:
    _, top, _, bottom = font.getbbox("Ag")
    return max(1, bottom - top) + max(2, (bottom - top) // 4)


def _block_height(lines: list[_Line], line_height: int) -> int:
    return len(lines) * line_height


def _draw_block(draw: ImageDraw.ImageDraw, lines: list[_Line], font: Font, center_x: float, top: float,
                line_height: int) -> None:
    """Lines centred on `center_x`, from `top` down; inactive lines grey and struck through."""
    for index, line in enumerate(lines):
        y = top + index * line_height + line_height / 2
        draw.text((center_x, y), line.text, font=font, fill=ACTIVE if line.active else INACTIVE, anchor="mm")
        if not line.active:
            draw.line((center_x - line.width / 2, y, center_x + line.width / 2, y), fill=INACTIVE,
                      width=max(1, line_height // 10))


# ----------------------------------------------------------------------------------------------------------------
# Grids


def cell_size(images: Sequence[Image.Image | None]) -> tuple[int, int]:
    """The size of one grid cell: the largest image (a Size axis makes cells of different sizes)."""
    present = [image for image in images if image is not None]
    if not present:
        raise ValueError("A grid needs at least one image.")
    return max(image.width for image in present), max(image.height for image in present)


def image_grid(images: Sequence[Image.Image | None], columns: int, margin: int = 0,
               size: tuple[int, int] | None = None) -> Image.Image:
    """Images row by row, `columns` wide, `margin` px apart; smaller images are centred in their cell and missing
    ones (None) are drawn as a grey cell."""
    width, height = size or cell_size(images)
    rows = max(1, -(-len(images) // columns))
    grid = Image.new("RGB", (columns * width + margin * (columns - 1), rows * height + margin * (rows - 1)), "white")
    for index, image in enumerate(images):
        x = (index % columns) * (width + margin)
        y = (index // columns) * (height + margin)
        if image is None:
            grid.paste(Image.new("RGB", (width, height), BLANK_CELL), (x, y))
            continue
        grid.paste(image.convert("RGB"), (x + (width - image.width) // 2, y + (height - image.height) // 2))
    return grid


def annotated_grid(images: Sequence[Image.Image | None], columns: int,
                   column_legends: Sequence[Sequence[Legend]] = (), row_legends: Sequence[Sequence[Legend]] = (),
                   margin: int = 0, size: tuple[int, int] | None = None) -> Image.Image:
    """`image_grid` with legends: one list of lines above each column and one left of each row. The left band is
    3/4 of a cell wide (A1111's choice); the top band is as tall as the tallest wrapped column legend. A side
    whose legends are all empty gets no band."""
    width, height = size or cell_size(images)
    grid = image_grid(images, columns, margin, (width, height))
    font_size = font_size_for(width, height)
    font = legend_font(font_size)
    line_height = _line_height(font)
    has_rows = any(legend.text for legends in row_legends for legend in legends)
    has_columns = any(legend.text for legends in column_legends for legend in legends)
    pad_left = max(width * 3 // 4, font_size * 4) if has_rows else 0
    column_lines = [_layout(legends, font, width) for legends in column_legends] if has_columns else []
    row_lines = [_layout(legends, font, pad_left - 4) for legends in row_legends] if has_rows else []
    pad_top = max(_block_height(lines, line_height) for lines in column_lines) + line_height if column_lines else 0
    canvas = Image.new("RGB", (grid.width + pad_left, grid.height + pad_top), "white")
    canvas.paste(grid, (pad_left, pad_top))
    draw = ImageDraw.Draw(canvas)
    for col, lines in enumerate(column_lines):
        center = pad_left + col * (width + margin) + width / 2
        _draw_block(draw, lines, font, center, (pad_top - _block_height(lines, line_height)) / 2, line_height)
    for row, lines in enumerate(row_lines):
        top = pad_top + row * (height + margin) + (height - _block_height(lines, line_height)) / 2
        _draw_block(draw, lines, font, pad_left / 2, top, line_height)
    return canvas


def legends_of(texts: Sequence[str]) -> list[list[Legend]]:
    """One active legend line per text (X/Y/Z axes label every column or row with one value)."""
    return [[Legend(text)] for text in texts]


@dataclass(frozen=True)
class XyzGrids:
    """The grids of one plot: one per Z value (`sub_grids`), and the Z grid that puts them side by side."""

    z_grid: Image.Image
    sub_grids: tuple[Image.Image, ...]


def xyz_grids(cells: Sequence[Image.Image | None], shape: tuple[int, int, int],
              legends: tuple[Sequence[str], Sequence[str], Sequence[str]], draw_legend: bool = True,
              margin: int = 0) -> XyzGrids:
    """Grids for cells in grid order (z, then y, then x). X values are columns, Y values rows; the Z grid places
    the sub-grids in one row titled with the Z values (A1111's layout)."""
    columns, rows, depth = shape
    size = cell_size(cells)
    per_grid = columns * rows
    sub_grids = []
    for z in range(depth):
        chunk = cells[z * per_grid:(z + 1) * per_grid]
        if draw_legend:
            sub_grids.append(annotated_grid(chunk, columns, legends_of(legends[0]), legends_of(legends[1]), margin,
                                            size))
        else:
            sub_grids.append(image_grid(chunk, columns, margin, size))
    sub_size = cell_size(sub_grids)
    z_legends = legends_of(legends[2]) if draw_legend else []
    z_grid = annotated_grid(sub_grids, depth, z_legends, (), margin, sub_size)
    return XyzGrids(z_grid, tuple(sub_grids))


# ----------------------------------------------------------------------------------------------------------------
# Saving

_NUMBER_RE = re.compile(r"-(\d{4,})\.")


def next_grid_path(folder: Path, basename: str, fmt: str = "png") -> Path:
    """`<basename>-NNNN.<ext>` with the next free number in `folder` (A1111's grid names, e.g. xyz_grid-0003)."""
    numbers = [int(match[1]) for path in folder.glob(f"{basename}-*") if (match := _NUMBER_RE.search(path.name))]
    number = max(numbers, default=-1) + 1
    suffix = "jpg" if fmt.lower() == "jpeg" else fmt.lower().lstrip(".")
    return folder / f"{basename}-{number:04d}.{suffix}"


def save_grid(image: Image.Image, folder: Path, basename: str, infotext: str, fmt: str = "png",
              today: date | None = None) -> Path:
    """Save a grid under `folder/YYYY-MM-DD/` with its infotext embedded (PNG text chunk or EXIF)."""
    day_folder = Path(folder) / (today or date.today()).isoformat()
    day_folder.mkdir(parents=True, exist_ok=True)
    return save_image(image, next_grid_path(day_folder, basename, fmt), infotext, fmt=fmt)
