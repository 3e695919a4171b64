"""styles.csv: A1111's file format, the merge rule, and safe writes."""
from __future__ import annotations

from pathlib import Path

import pytest

from webui.core.errors import ValidationError
from webui.core.styles import Style, StyleStore, apply_style_text, apply_styles

BOM = b"\xef\xbb\xbf"


def write_csv(path: Path, text: str) -> None:
    path.write_bytes(BOM + text.encode("utf-8"))


# ----------------------------------------------------------------------------------------------------------------
# Merge rule


@pytest.mark.parametrize(
    ("style", "prompt", "expected"),
    [
        ("masterpiece, {prompt}, 8k", "a cat", "masterpiece, a cat, 8k"),
        ("{prompt} {prompt}", "x", "x x"),
        ("{prompt}", "", ""),
        ("best quality", "a cat", "a cat, best quality"),
        ("best quality", "", "best quality"),
        ("  best quality ", " a cat  ", "a cat, best quality"),
        ("", "a cat", "a cat"),
    ],
)
def test_apply_style_text(style: str, prompt: str, expected: str) -> None:
    assert apply_style_text(style, prompt) == expected


def test_apply_styles_in_order_to_both_prompts() -> None:
    styles = [Style("one", "{prompt}, sharp", "blurry"), Style("two", "photo", "")]
    assert apply_styles("cat", "ugly", styles) == ("cat, sharp, photo", "ugly, blurry")


# ----------------------------------------------------------------------------------------------------------------
# File format


def test_bom_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    write_csv(path, 'name,prompt,negative_prompt\r\nPhoto,"photo of {prompt}, 35mm",cartoon\r\nEmpty,,\r\n')
    store = StyleStore(path)
    store.load()
    assert store.names() == ["Photo", "Empty"]
    assert store.get("Photo") == Style("Photo", "photo of {prompt}, 35mm", "cartoon")
    assert store.get("Empty") == Style("Empty", "", "")
    assert store.get("missing") is None

    store.save_style(Style("New", "n", "m"))
    data = path.read_bytes()
    assert data.startswith(BOM) and not data.startswith(BOM + BOM)
    assert data.decode("utf-8-sig").splitlines()[0] == "name,prompt,negative_prompt"

    again = StyleStore(path)
    again.load()
    assert again.styles() == store.styles()
    assert again.names() == ["Photo", "Empty", "New"]


def test_commas_quotes_and_newlines_survive(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    tricky = Style('Say "hi", please', 'a "quoted", comma, {prompt}', "line one\nline two, with 'single'")
    store = StyleStore(path)
    store.save_style(tricky)
    assert '"Say ""hi"", please"' in path.read_text(encoding="utf-8-sig")
    again = StyleStore(path)
    again.load()
    assert again.get(tricky.name) == tricky


def test_reads_files_without_bom_old_text_column_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text("name, text\n# note, ignored\nOld, old style\n,no name\n", encoding="utf-8")
    store = StyleStore(path)
    store.load()
    assert store.styles() == [Style("Old", "old style", "")]


def test_missing_file_is_empty(tmp_path: Path) -> None:
    store = StyleStore(tmp_path / "nope.csv")
    store.load()
    assert store.names() == []
    assert store.apply("cat", "", ["unknown"]) == ("cat", "")


# ----------------------------------------------------------------------------------------------------------------
# Changes


def test_save_replaces_in_place_and_writes_backup(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    write_csv(path, "name,prompt,negative_prompt\na,1,\nb,2,\n")
    before = path.read_bytes()
    store = StyleStore(path)
    store.load()
    store.save_style(Style("a", "changed", "neg"))
    assert store.names() == ["a", "b"]
    assert store.get("a") == Style("a", "changed", "neg")
    assert (tmp_path / "styles.csv.bak").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles.csv", "styles.csv.bak"]  # no temp file left


def test_first_save_creates_file_without_backup(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "styles.csv"
    StyleStore(path).save_style(Style("x", "y", "z"))
    assert path.exists()
    assert not (tmp_path / "sub" / "styles.csv.bak").exists()


def test_change_before_load_keeps_existing_styles(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    write_csv(path, "name,prompt,negative_prompt\nkeep,k,\n")
    StyleStore(path).save_style(Style("new", "n", ""))
    store = StyleStore(path)
    store.load()
    assert store.names() == ["keep", "new"]


def test_delete(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    write_csv(path, "name,prompt,negative_prompt\na,1,\nb,2,\n")
    store = StyleStore(path)
    assert store.delete("a") is True
    assert store.names() == ["b"]
    assert store.delete("a") is False
    again = StyleStore(path)
    again.load()
    assert again.names() == ["b"]
    assert "a,1" in (tmp_path / "styles.csv.bak").read_text(encoding="utf-8-sig")


def test_store_apply_by_name(tmp_path: Path) -> None:
    store = StyleStore(tmp_path / "styles.csv")
    store.save_style(Style("wrap", "art of {prompt}", "bad"))
    assert store.apply("cat", "", ["wrap", "missing"]) == ("art of cat", "bad")


def test_style_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        StyleStore(tmp_path / "styles.csv").save_style(Style("  ", "x", ""))
