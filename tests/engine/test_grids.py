"""Grid images: exact pixel sizes, cell placement, legends that wrap, fonts found offline, saving with infotext."""
from __future__ import annotations

from datetime import date

import numpy as np
from PIL import Image

from webui.core.script_results import Legend
from webui.engine.output.grids import (
    BLANK_CELL,
    annotated_grid,
    image_grid,
    legend_font,
    next_grid_path,
    save_grid,
    wrap_text,
    xyz_grids,
)
from webui.engine.output.png import read_infotext


def colored(index: int, size=(32, 32)) -> Image.Image:
    return Image.new("RGB", size, (index * 20 % 256, 100, 200))


def test_image_grid_size_margin_and_placement():
    images = [colored(i) for i in range(6)]
    grid = image_grid(images, columns=2, margin=4)
    assert grid.size == (2 * 32 + 4, 3 * 32 + 2 * 4)
    assert grid.getpixel((36 + 5, 72 + 5)) == colored(5).getpixel((0, 0))  # column 1, row 2
    assert grid.getpixel((33, 0)) == (255, 255, 255)  # the margin


def test_missing_cells_are_grey_and_small_images_centred():
    grid = image_grid([colored(1, (16, 16)), None, colored(2)], columns=3)
    assert grid.size == (96, 32)
    assert grid.getpixel((40, 16)) == BLANK_CELL
    assert grid.getpixel((16, 16)) == colored(1).getpixel((0, 0)) and grid.getpixel((1, 1)) == (255, 255, 255)


def test_xyz_grids_sizes_without_legend():
    cells = [colored(i) for i in range(12)]
    grids = xyz_grids(cells, (2, 3, 2), (["a", "b"], ["c", "d", "e"], ["f", "g"]), draw_legend=False, margin=2)
    sub_w, sub_h = 2 * 32 + 2, 3 * 32 + 2 * 2
    assert [g.size for g in grids.sub_grids] == [(sub_w, sub_h)] * 2
    assert grids.z_grid.size == (2 * sub_w + 2, sub_h)
    assert grids.z_grid.getpixel((sub_w + 2 + 1, 1)) == cells[6].getpixel((0, 0))  # second Z grid starts with cell 6


def test_legends_add_bands_and_wrap():
    images = [colored(i, (128, 128)) for i in range(4)]
    long = "a very long legend that cannot possibly fit on one line of a small cell"
    grid = annotated_grid(images, 2, [[Legend("Steps: 1")], [Legend(long)]], [[Legend("x")], [Legend("y")]])
    assert grid.width == 256 + 128 * 3 // 4
    assert grid.height > 256
    band = np.asarray(grid)[: grid.height - 256, 128 * 3 // 4:]
    assert (band < 128).any()  # text was drawn in the top band
    font = legend_font(20)
    lines = wrap_text(long, font, 128)
    assert len(lines) > 2 and " ".join(lines) == long
    assert all(font.getlength(line) <= 128 for line in lines)
    only_columns = annotated_grid(images, 2, [[Legend("a")], [Legend("b")]], [[Legend("")], [Legend("")]])
    assert only_columns.width == 256  # no row legends, no left band


def test_a_word_wider_than_the_cell_is_broken():
    font = legend_font(12)
    lines = wrap_text("<lora:some-really-long-file-name-000002:1>", font, 40)
    assert len(lines) > 1 and "".join(lines) == "<lora:some-really-long-file-name-000002:1>"


def test_font_is_found_offline():
    font = legend_font(16)
    assert font.getbbox("Ag")[3] > 8


def test_saved_grid_is_numbered_and_keeps_its_infotext(tmp_path):
    first = save_grid(colored(1), tmp_path, "xyz_grid", "a\nSteps: 1, Sampler: Euler, Seed: 1", today=date(2024, 5, 6))
    second = save_grid(colored(2), tmp_path, "xyz_grid", "b\nSteps: 1, Sampler: Euler, Seed: 2", today=date(2024, 5, 6))
    assert first == tmp_path / "2024-05-06" / "xyz_grid-0000.png"
    assert second.name == "xyz_grid-0001.png"
    assert read_infotext(Image.open(second)).startswith("b\n")
    assert next_grid_path(tmp_path / "2024-05-06", "prompt_matrix").name == "prompt_matrix-0000.png"
