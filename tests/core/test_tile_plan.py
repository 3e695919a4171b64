"""Ultimate SD upscale, the pure part: tile plan geometry, options, A1111's script_args and the infotext."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webui.core.errors import ValidationError
from webui.core.infotext import parse_infotext
from webui.core.tile_plan import (
    SHAPE_RADIAL,
    SHAPE_RAMP_X,
    SHAPE_RAMP_Y,
    STAGE_REDRAW,
    Rect,
    TileGrid,
    band_patches,
    crop_region,
    half_tile_patches,
    is_white,
    redraw_passes,
    seam_lines,
)
from webui.core.tiled_upscale import (
    SCRIPT_ARGS,
    TiledUpscaleOptions,
    options_from_script_args,
    plan_tiled_upscale,
    script_info_args,
    upscaled_infotext,
)

UPSCALERS = ["None", "Lanczos", "Nearest", "RealESRGAN_x4plus"]


def coverage(rects, size) -> Counter:
    """How many rectangles cover each pixel."""
    counts: Counter = Counter()
    for rect in rects:
        for y in range(rect.top, rect.bottom):
            for x in range(rect.left, rect.right):
                counts[(x, y)] += 1
    assert all(0 <= x < size[0] and 0 <= y < size[1] for x, y in counts)
    return counts


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 96), st.integers(8, 96), st.integers(8, 40), st.integers(8, 40),
       st.sampled_from(["Linear", "Chess"]))
def test_tiles_cover_the_canvas_each_pixel_exactly_once(width, height, tile_w, tile_h, mode):
    grid = TileGrid((width, height), (tile_w, tile_h))
    passes = redraw_passes(grid, mode)
    patches = [patch for group in passes for patch in group]
    assert len(patches) == grid.rows * grid.columns == len({patch.cell for patch in patches})
    counts = coverage([patch.rect for patch in patches], (width, height))
    assert len(counts) == width * height and set(counts.values()) == {1}
    assert all(patch.stage == STAGE_REDRAW for patch in patches)


def test_linear_is_row_major_in_one_pass():
    grid = TileGrid((100, 70), (32, 32))  # 4 columns (last 4 px wide), 3 rows (last 6 px high)
    (only,) = redraw_passes(grid, "Linear")
    assert [p.cell for p in only] == [(r, c) for r in range(3) for c in range(4)]
    assert only[3].rect == Rect(96, 0, 100, 32) and only[-1].rect == Rect(96, 64, 100, 70)


@pytest.mark.parametrize("rows, columns", [(3, 4), (4, 3), (1, 5), (5, 1), (2, 2), (1, 1)])
def test_chess_does_white_squares_then_black_and_neighbours_differ(rows, columns):
    grid = TileGrid((columns * 16, rows * 16), (16, 16))
    passes = redraw_passes(grid, "Chess")
    white, black = passes
    assert [p.cell for p in white] == [(r, c) for r in range(rows) for c in range(columns) if (r + c) % 2 == 0]
    assert [p.cell for p in black] == [(r, c) for r in range(rows) for c in range(columns) if (r + c) % 2 == 1]
    assert is_white(0, 0) and not is_white(0, 1) and not is_white(1, 0) and is_white(1, 1)
    for group in passes:  # no two tiles of one pass share an edge
        cells = {p.cell for p in group}
        assert not any((r, c + 1) in cells or (r + 1, c) in cells for r, c in cells)
    assert redraw_passes(grid, "None") == ()


def test_band_pass_bands_are_centred_on_the_seams():
    grid = TileGrid((200, 130), (64, 48))
    xs, ys = seam_lines(grid)
    assert xs == (64, 128, 192) and ys == (48, 96)
    bands = band_patches(grid, 16)
    vertical = [b for b in bands if b.shape == SHAPE_RAMP_X]
    horizontal = [b for b in bands if b.shape == SHAPE_RAMP_Y]
    assert bands == tuple(vertical + horizontal)  # vertical seams first
    assert [((b.rect.left + b.rect.right) / 2) for b in vertical] == list(xs)
    assert [((b.rect.top + b.rect.bottom) / 2) for b in horizontal] == list(ys)
    assert all(b.rect.width == 16 and b.rect.top == 0 and b.rect.bottom == 130 for b in vertical)
    assert all(b.rect.height == 16 and b.rect.left == 0 and b.rect.right == 200 for b in horizontal)
    assert band_patches(TileGrid((64, 64), (64, 64)), 16) == ()  # one tile: no seams


def test_half_tile_offsets_are_centred_on_seams_and_intersections():
    grid = TileGrid((96, 64), (32, 32))  # 3 columns, 2 rows
    plain = half_tile_patches(grid)
    across_rows = [p for p in plain if p.shape == SHAPE_RAMP_Y]
    across_columns = [p for p in plain if p.shape == SHAPE_RAMP_X]
    assert len(across_rows) == (2 - 1) * 3 and len(across_columns) == 2 * (3 - 1)
    assert plain == tuple(across_rows + across_columns)
    assert all((p.rect.top + p.rect.bottom) / 2 == 32 for p in across_rows)  # the horizontal seam
    assert [(p.rect.left + p.rect.right) / 2 for p in across_columns] == [32, 64, 32, 64]
    assert all(p.rect.width == 32 and p.rect.height == 32 for p in plain)
    corners = [p for p in half_tile_patches(grid, intersections=True) if p.shape == SHAPE_RADIAL]
    assert [((p.rect.left + p.rect.right) / 2, (p.rect.top + p.rect.bottom) / 2) for p in corners] == [
        (32, 32), (64, 32)]


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 40).map(lambda n: n * 8), st.integers(8, 40).map(lambda n: n * 8),
       st.integers(0, 300), st.integers(0, 300), st.integers(1, 80), st.integers(1, 80), st.integers(0, 64))
def test_crop_region_holds_the_area_and_padding_and_is_a_multiple_of_8(width, height, x, y, w, h, padding):
    area = Rect(x, y, x + w, y + h).clip(width, height)
    if area.empty:
        return
    crop = crop_region(area, padding, (width, height))
    assert 0 <= crop.left and 0 <= crop.top and crop.right <= width and crop.bottom <= height
    assert crop.width % 8 == 0 and crop.height % 8 == 0
    wanted = area.grow(padding).clip(width, height)
    assert crop.left <= wanted.left and crop.top <= wanted.top
    assert crop.right >= wanted.right and crop.bottom >= wanted.bottom
    assert crop.width < wanted.width + 8 and crop.height < wanted.height + 8


def test_plan_counts_like_the_extension():
    options = TiledUpscaleOptions(tile_width=64, tile_height=0, redraw_mode="Chess", seams_fix_type="Band pass")
    plan = plan_tiled_upscale((256, 192), options)
    assert (plan.grid.rows, plan.grid.columns) == (3, 4) and len(plan.redraw) == 2
    assert len(plan.seams) == 3 + 2 and plan.patch_count == 12 + 5
    half = plan_tiled_upscale((256, 192), TiledUpscaleOptions(tile_width=64, seams_fix_type="Half tile offset pass"))
    assert len(half.seams) == 3 * 3 + 2 * 4
    corners = plan_tiled_upscale((256, 192), TiledUpscaleOptions(
        tile_width=64, seams_fix_type="Half tile offset pass + intersections"))
    assert len(corners.seams) == 3 * 3 + 2 * 4 + 2 * 3


def test_target_sizes():
    scale = TiledUpscaleOptions(target_size_type="Scale from image size", custom_scale=2.5)
    assert scale.target_size((100, 61), (512, 512)) == (256, 160)  # rounded up to multiples of 8
    custom = TiledUpscaleOptions(target_size_type="Custom size", custom_width=640, custom_height=384)
    assert custom.target_size((100, 61), (512, 512)) == (640, 384)
    assert TiledUpscaleOptions().target_size((100, 61), (512, 448)) == (512, 448)  # from the img2img sliders
    with pytest.raises(ValidationError, match="target size"):
        TiledUpscaleOptions(target_size_type="Scale from image size", custom_scale=16).target_size((4000, 10),
                                                                                                  (8, 8))


def test_bad_options_are_all_named_in_one_message():
    bad = TiledUpscaleOptions(tile_width=0, tile_height=0, mask_blur=99, redraw_mode="Spiral",
                              seams_fix_denoise=1.5, target_size_type="Custom size", custom_width=100)
    with pytest.raises(ValidationError) as caught:
        bad.validate()
    message = str(caught.value)
    for part in ("Ultimate SD upscale", "Redraw type must be one of Linear, Chess, None", "Mask blur",
                 "Seams fix denoise", "Tile width and height must be at least 8", "Custom width"):
        assert part in message
    assert TiledUpscaleOptions(tile_width=0, tile_height=96).tile_size == (96, 96)


def test_script_args_in_a1111_order_by_index_or_name():
    args = [None, 256, 0, 12, 24, 32, 0.4, 8, 3, False, 1, True, 6, 2, 2, 1024, 768, 1.5]
    options = options_from_script_args(args, UPSCALERS)
    assert options == TiledUpscaleOptions(
        upscaler="RealESRGAN_x4plus", target_size_type="Scale from image size", custom_width=1024,
        custom_height=768, custom_scale=1.5, tile_width=256, tile_height=0, mask_blur=12, padding=24,
        redraw_mode="Chess", seams_fix_type="Half tile offset pass", seams_fix_width=32, seams_fix_denoise=0.4,
        seams_fix_padding=8, seams_fix_mask_blur=6, save_upscaled_image=False, save_seams_fix_image=True)
    named = ["", 256, 0, 12, 24, 32, 0.4, 8, "lanczos", False, "chess", True, 6, "Band pass", "Custom size"]
    by_name = options_from_script_args(named, UPSCALERS)
    assert (by_name.upscaler, by_name.redraw_mode, by_name.seams_fix_type) == ("Lanczos", "Chess", "Band pass")
    assert options_from_script_args([], UPSCALERS) == TiledUpscaleOptions()  # every default
    assert [spec.label for spec in SCRIPT_ARGS][8] == "Upscaler" and len(SCRIPT_ARGS) == 18
    info = script_info_args(UPSCALERS)
    assert info[8]["choices"] == UPSCALERS and info[10]["choices"] == ["Linear", "Chess", "None"]
    with pytest.raises(ValidationError, match="upscaler index 9 is out of range"):
        options_from_script_args([None, 512, 0, 8, 32, 64, 0.35, 16, 9], UPSCALERS)
    with pytest.raises(ValidationError, match="unknown seams fix type 'zigzag'"):
        options_from_script_args([None] * 13 + ["zigzag"], UPSCALERS)
    with pytest.raises(ValidationError, match="Tile width must be a number"):
        options_from_script_args([None, "wide"], UPSCALERS)


def test_infotext_has_the_canvas_size_and_the_scripts_keys():
    tile = ("a cat\nNegative prompt: blurry\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 64x64, "
            "Denoising strength: 0.35, Mask blur: 0, Masked content: original, Version: 0.1.0")
    options = TiledUpscaleOptions(upscaler="Lanczos", tile_width=64, seams_fix_type="Band pass")
    parsed = parse_infotext(upscaled_infotext(tile, (256, 192), 0.3, options))
    assert parsed.prompt == "a cat" and parsed.negative_prompt == "blurry"
    params = parsed.params
    assert params["Size"] == "256x192" and params["Denoising strength"] == "0.3" and params["Seed"] == "3"
    assert params["Ultimate SD upscale upscaler"] == "Lanczos"
    assert params["Ultimate SD upscale tile_width"] == params["Ultimate SD upscale tile_height"] == "64"
    assert params["Ultimate SD upscale mask_blur"] == "8" and params["Ultimate SD upscale padding"] == "32"
    assert params["Ultimate SD upscale seams_fix_type"] == "Band pass"
    assert "Mask blur" not in params and "Masked content" not in params
