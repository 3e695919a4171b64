"""A1111-style output naming: dated folders and the running number."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from webui.core.filenames import dated_folder, next_image_path, next_sequence_number


def test_dated_folder() -> None:
    assert dated_folder(Path("outputs"), "txt2img-images", date(2024, 5, 1)) == Path(
        "outputs/txt2img-images/2024-05-01")


@pytest.mark.parametrize("kind", ["", ".", "..", "a/b", "..\\x"])
def test_dated_folder_refuses_names_that_leave_the_root(kind: str) -> None:
    with pytest.raises(ValueError):
        dated_folder(Path("outputs"), kind, date(2024, 5, 1))


def test_missing_or_empty_folder_starts_at_zero(tmp_path: Path) -> None:
    assert next_image_path(tmp_path / "missing", 1234) == tmp_path / "missing" / "00000-1234.png"
    assert next_image_path(tmp_path, 7) == tmp_path / "00000-7.png"


def test_number_follows_the_highest_existing_prefix(tmp_path: Path) -> None:
    for name in ("00000-1.png", "00007-99.png", "00003-5.jpg", "00008.txt", "notes.txt", "123abc.png",
                 ".00042-1.png.abc.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert next_sequence_number(tmp_path) == 9
    assert next_image_path(tmp_path, 4242, "jpg") == tmp_path / "00009-4242.jpg"


def test_gaps_do_not_reuse_numbers(tmp_path: Path) -> None:
    (tmp_path / "00010-1.png").write_bytes(b"")
    assert next_image_path(tmp_path, 2).name == "00011-2.png"


def test_number_grows_past_five_digits(tmp_path: Path) -> None:
    (tmp_path / "99999-1.png").write_bytes(b"")
    assert next_image_path(tmp_path, 2).name == "100000-2.png"
    (tmp_path / "100000-2.png").write_bytes(b"")
    assert next_image_path(tmp_path, 3).name == "100001-3.png"


def test_extension_is_normalised(tmp_path: Path) -> None:
    assert next_image_path(tmp_path, 1, ".WEBP").name == "00000-1.webp"
    with pytest.raises(ValueError):
        next_image_path(tmp_path, 1, "")
