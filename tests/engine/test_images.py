"""Images carry their infotext where A1111 and other tools look for it, and saves are atomic."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from PIL import Image

from webui.engine.output.png import (
    USER_COMMENT_TAG,
    decode_user_comment,
    encode_user_comment,
    exif_with_user_comment,
    read_infotext,
    save_image,
)

INFOTEXT = ('a cat, (sitting:1.2)\nsecond line — ünïcode 猫\nNegative prompt: blurry\n'
            'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, Lora hashes: "a: 0123456789ab"')


def _image(mode: str = "RGB") -> Image.Image:
    return Image.new(mode, (64, 64), "red" if mode != "P" else 3)


@pytest.mark.parametrize("fmt", ["png", "jpg", "jpeg", "webp"])
def test_infotext_round_trips(tmp_path: Path, fmt: str) -> None:
    path = save_image(_image(), tmp_path / f"00000-1.{fmt}", INFOTEXT, fmt)
    with Image.open(path) as loaded:
        assert read_infotext(loaded) == INFOTEXT


def test_png_uses_the_parameters_text_chunk(tmp_path: Path) -> None:
    path = save_image(_image(), tmp_path / "a.png", INFOTEXT)
    with Image.open(path) as loaded:
        assert loaded.info["parameters"] == INFOTEXT


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_exif_user_comment_is_unicode_utf16be(tmp_path: Path, fmt: str) -> None:
    path = save_image(_image(), tmp_path / f"a.{fmt}", "héllo", fmt)
    with Image.open(path) as loaded:
        raw = loaded.getexif().get_ifd(0x8769)[USER_COMMENT_TAG]
    assert raw == b"UNICODE\x00" + "héllo".encode("utf-16-be")


def test_user_comment_is_typed_undefined() -> None:
    # piexif (and so A1111's PNG Info) only reads UserComment back as bytes when its TIFF type is UNDEFINED (7).
    block = exif_with_user_comment(b"UNICODE\x00\x00a")
    tiff = block[6:]
    exif_ifd = struct.unpack(">I", tiff[18:22])[0]
    tag, kind, count = struct.unpack(">HHI", tiff[exif_ifd + 2:exif_ifd + 10])
    assert (tag, kind, count) == (USER_COMMENT_TAG, 7, 10)


@pytest.mark.parametrize("mode", ["RGBA", "P", "L"])
def test_jpeg_accepts_any_mode(tmp_path: Path, mode: str) -> None:
    path = save_image(_image(mode), tmp_path / "a.jpg", "x", "jpg")
    with Image.open(path) as loaded:
        assert loaded.format == "JPEG"


def test_atomic_save_leaves_no_temp_files_and_replaces_existing(tmp_path: Path) -> None:
    target = tmp_path / "day" / "00000-1.png"
    save_image(_image(), target, "first")
    save_image(_image(), target, "second")
    assert sorted(p.name for p in target.parent.iterdir()) == ["00000-1.png"]
    with Image.open(target) as loaded:
        assert read_infotext(loaded) == "second"


def test_failed_save_cleans_up_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.jpg"
    save_image(_image(), target, "old", "jpg")
    with pytest.raises(ValueError):
        save_image(_image(), target, "x" * 40000, "jpg")  # EXIF over JPEG's 64 KiB segment limit
    assert [p.name for p in tmp_path.iterdir()] == ["a.jpg"]
    with Image.open(target) as loaded:
        assert read_infotext(loaded) == "old"


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unsupported image format"):
        save_image(_image(), tmp_path / "a.bmp", "x", "bmp")


def test_image_without_infotext(tmp_path: Path) -> None:
    for fmt in ("png", "jpg"):
        path = save_image(_image(), tmp_path / f"a.{fmt}", "", fmt)
        with Image.open(path) as loaded:
            assert read_infotext(loaded) is None


@pytest.mark.parametrize(("data", "text"), [
    (encode_user_comment("a: b, ü"), "a: b, ü"),
    (b"UNICODE\x00" + "abc".encode("utf-16-le"), "abc"),
    (b"UNICODE\x00" + "abc".encode("utf-16"), "abc"),
    (b"ASCII\x00\x00\x00plain\x00", "plain"),
    (b"\x00" * 8 + "utf8 ü".encode(), "utf8 ü"),
    ("already text", "already text"),
    (b"no prefix", "no prefix"),
])
def test_decode_user_comment_variants(data: bytes | str, text: str) -> None:
    assert decode_user_comment(data) == text
