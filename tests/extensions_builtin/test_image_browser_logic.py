"""Image browser logic on real PNG files: index, filters, paging, trash, and refusal of paths leaving outputs."""
from __future__ import annotations

import os
import time

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.extensions_builtin.conftest import builtin_module

output_index = builtin_module("image-browser", "output_index")
trash = builtin_module("image-browser", "trash")


def _png(path, infotext: str, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = PngInfo()
    meta.add_text("parameters", infotext)
    Image.new("RGB", (8, 8), "red").save(path, pnginfo=meta)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _read(path):
    with Image.open(path) as image:
        return image.info.get("parameters", "")


@pytest.fixture()
def outputs(tmp_path):
    root = tmp_path / "outputs"
    day = time.mktime((2026, 3, 4, 12, 0, 0, 0, 0, -1))
    _png(root / "txt2img-images" / "2026-03-04" / "00000-1.png",
         "a red fox in snow\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 64x64, "
         "Model: tiny-sd1, Version: x", day)
    _png(root / "txt2img-images" / "2026-03-05" / "00001-2.png",
         "a blue whale\nSteps: 20, Sampler: Euler a, Seed: 2, Model: \"other, model\"", day + 86400)
    _png(root / "img2img-images" / "2026-03-05" / "00000-3.png",
         "a red car\nSteps: 5, Seed: 3, Model: tiny-sd1", day + 86400 + 60)
    _png(root / ".trash" / "old.png", "a red thing\nSteps: 5, Seed: 9")
    (root / "notes.txt").write_text("not an image")
    return root


def test_index_filters_and_pages(outputs):
    index = output_index.OutputIndex(outputs, _read)
    everything = index.entries()
    assert [e.rel for e in everything] == ["img2img-images/2026-03-05/00000-3.png",
                                           "txt2img-images/2026-03-05/00001-2.png",
                                           "txt2img-images/2026-03-04/00000-1.png"]
    assert index.folders() == ["img2img-images", "txt2img-images"]
    assert index.models() == ["other, model", "tiny-sd1"]
    first = everything[-1]
    assert (first.prompt, first.model, first.date) == ("a red fox in snow", "tiny-sd1", "2026-03-04")

    def rels(**query):
        return [e.rel.rsplit("/", 1)[1] for e in index.browse(output_index.BrowseQuery(**query)).entries]

    assert rels(text="RED") == ["00000-3.png", "00000-1.png"]
    assert rels(text="red", folder="txt2img-images") == ["00000-1.png"]
    assert rels(model="other") == ["00001-2.png"]
    assert rels(date_from="2026-03-05") == ["00000-3.png", "00001-2.png"]
    assert rels(date_to="2026-03-04") == ["00000-1.png"]
    page = index.browse(output_index.BrowseQuery(page=2, page_size=2))
    assert (page.page, page.pages, page.total, len(page.entries)) == (2, 2, 3, 1)
    assert index.browse(output_index.BrowseQuery(page=99, page_size=2)).page == 2
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        index.browse(output_index.BrowseQuery(date_from="March"))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        output_index.OutputIndex(outputs / "none", _read).browse(output_index.BrowseQuery(date_to="x"))


def test_index_rereads_only_changed_files(outputs):
    reads: list[str] = []

    def counting(path):
        reads.append(path.name)
        return _read(path)

    index = output_index.OutputIndex(outputs, counting)
    first_page = index.browse(output_index.BrowseQuery(page_size=1, folder="txt2img-images"))
    assert first_page.total == 2 and reads == ["00001-2.png"]  # only the image shown is opened
    index.entries()
    index.entries()
    assert len(reads) == 3
    _png(outputs / "txt2img-images" / "2026-03-04" / "00000-1.png", "a green fox\nSteps: 1, Seed: 1")
    assert any(e.prompt == "a green fox" for e in index.entries())
    assert len(reads) == 4


def test_delete_moves_to_trash_with_sidecar(outputs):
    rel = "txt2img-images/2026-03-04/00000-1.png"
    (outputs / rel).with_suffix(".txt").write_text("sidecar")
    moved = trash.move_to_trash(outputs, rel)
    assert moved == (outputs / ".trash" / rel).resolve() and moved.is_file()
    assert moved.with_suffix(".txt").read_text() == "sidecar"
    assert not (outputs / rel).exists()
    _png(outputs / rel, "again\nSteps: 1, Seed: 1")
    assert trash.move_to_trash(outputs, rel).name == "00000-1-1.png"
    assert [e.rel for e in output_index.OutputIndex(outputs, _read).entries()] == [
        "img2img-images/2026-03-05/00000-3.png", "txt2img-images/2026-03-05/00001-2.png"]


@pytest.mark.parametrize("bad", ["../secret.png", "txt2img-images/../../secret.png", "/etc/passwd",
                                 "..\\secret.png", ".trash/old.png", "", "notes.txt", "a/./../b.png"])
def test_delete_refuses_paths_leaving_outputs(outputs, bad):
    secret = outputs.parent / "secret.png"
    _png(secret, "secret")
    with pytest.raises(trash.OutsideOutputsError):
        trash.move_to_trash(outputs, bad)
    assert secret.is_file() and (outputs / ".trash" / "old.png").is_file()


def test_delete_refuses_symlinks_out_of_outputs(outputs):
    secret = outputs.parent / "secret.png"
    _png(secret, "secret")
    (outputs / "link.png").symlink_to(secret)
    (outputs / "linkdir").symlink_to(outputs.parent, target_is_directory=True)
    for rel in ("link.png", "linkdir/secret.png"):
        with pytest.raises(trash.OutsideOutputsError):
            trash.move_to_trash(outputs, rel)
    assert secret.is_file()
    listed = [e.rel for e in output_index.OutputIndex(outputs, _read).entries()]
    assert "link.png" not in listed and "linkdir/secret.png" not in listed
    with pytest.raises(FileNotFoundError):
        trash.move_to_trash(outputs, "txt2img-images/none.png")
