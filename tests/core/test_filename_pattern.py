"""A1111's `samples_filename_pattern`: tokens, sanitising, length limits, and names built from an infotext."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from webui.core.filenames import (
    MAX_FILENAME_BYTES,
    FilenameContext,
    apply_filename_pattern,
    image_decoration,
    next_image_path,
    sanitize_filename_part,
    unknown_filename_tokens,
)
from webui.core.infotext import build_infotext

NOW = datetime(2024, 5, 1, 13, 45, 9)
CTX = FilenameContext(seed=1234, prompt="a cat: on a mat/rug", negative_prompt="blurry", steps=20, cfg_scale=7.0,
                      sampler="DPM++ 2M", model_name="sd_xl base", model_hash="0123456789", width=512, height=768,
                      clip_skip=2, now=NOW)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[seed]", "1234"),
    ("[seed]-[prompt_spaces]", "1234-a cat_ on a mat_rug"),
    ("[prompt]", "a_cat__on_a_mat_rug"),
    ("[steps]-[cfg]-[sampler]", "20-7.0-DPM++ 2M"),
    ("[model_name]-[model_hash]", "sd_xl base-0123456789"),
    ("[width]x[height]", "512x768"),
    ("[date]", "2024-05-01"),
    ("[datetime]", "20240501134509"),
    ("[datetime<%Y%m%d_%H%M%S>]", "20240501_134509"),
    ("[datetime<%H:%M>]", "13_45"),
    ("[prompt_words]", "a cat on a mat rug"),
    ("[clip_skip]", "2"),
    ("[none]", ""),
    ("[SEED]", "1234"),
    ("x-[styles]-[seed]", "x-[styles]-1234"),  # unknown tokens stay as written, as in A1111
    ("plain text", "plain text"),
])
def test_tokens(pattern: str, expected: str) -> None:
    assert apply_filename_pattern(pattern, CTX) == expected


def test_prompt_hash_is_stable_and_short() -> None:
    value = apply_filename_pattern("[prompt_hash]", CTX)
    assert len(value) == 8 and value == apply_filename_pattern("[prompt_hash]", CTX)


def test_empty_pattern_means_the_seed() -> None:
    assert image_decoration("", CTX) == "1234"
    assert image_decoration("  ", CTX) == "1234"


def test_missing_values_substitute_as_nothing() -> None:
    assert apply_filename_pattern("[seed]-[steps]-[model_name]", FilenameContext(seed=5, now=NOW)) == "5--"


def test_unknown_tokens_are_reported() -> None:
    assert unknown_filename_tokens("[seed]-[bogus]-[datetime<%Y>]-[job]") == ["[bogus]", "[job]"]
    assert unknown_filename_tokens("no tokens") == []


def test_sanitize_part_like_a1111() -> None:
    assert sanitize_filename_part("a/b\\c:d*e?f\"g<h>i|j\nk#l") == "a_b_c_d_e_f_g_h_i_j_k_l"
    assert sanitize_filename_part(" a b. ", replace_spaces=False) == "a b"
    assert sanitize_filename_part(" a b") == "_a_b"  # spaces become "_" first, as in A1111
    assert sanitize_filename_part("a b", replace_spaces=False) == "a b"
    assert len(sanitize_filename_part("x" * 500)) == 128
    assert sanitize_filename_part(None) == ""


def test_file_names_keep_the_running_number_and_stay_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "00004-1.png").write_bytes(b"")
    path = next_image_path(tmp_path, 9, "jpg", decoration="../../etc/passwd: x")
    assert path.parent == tmp_path
    assert path.name == "00005-.._.._etc_passwd_ x.jpg"
    assert next_image_path(tmp_path, 9, "png", decoration="").name == "00005.png"
    assert next_image_path(tmp_path, 9, "png", decoration="trailing dots...").name == "00005-trailing dots.png"


def test_long_names_are_cut_to_the_file_system_limit(tmp_path: Path) -> None:
    name = next_image_path(tmp_path, 1, "webp", decoration="\u732b" * 300).name  # 3 bytes per character
    assert len(name.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert name.startswith("00000-\u732b") and name.endswith(".webp")
    (tmp_path / name).write_bytes(b"")  # the file system accepts it


def test_context_from_an_infotext() -> None:
    infotext = build_infotext("a red, circle", "blurry", {
        "Steps": 3, "Sampler": "Euler a", "Schedule type": "Karras", "CFG scale": 5.5, "Seed": 42, "Size": "64x96",
        "Model hash": "abcdef0123", "Model": "tiny-sd1", "Clip skip": 2, "Version": "x"})
    ctx = FilenameContext.from_infotext(42, infotext, NOW)
    assert (ctx.prompt, ctx.negative_prompt, ctx.steps, ctx.cfg_scale) == ("a red, circle", "blurry", 3, 5.5)
    assert (ctx.sampler, ctx.model_name, ctx.model_hash) == ("Euler a", "tiny-sd1", "abcdef0123")
    assert (ctx.width, ctx.height, ctx.clip_skip, ctx.seed) == (64, 96, 2, 42)
    assert image_decoration("[seed]-[prompt_spaces]-[model_name]", ctx) == "42-a red, circle-tiny-sd1"


def test_context_from_no_infotext() -> None:
    ctx = FilenameContext.from_infotext(7, "", NOW)
    assert image_decoration("[seed]-[prompt]", ctx) == "7-"
