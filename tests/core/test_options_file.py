"""config.json on disk: a corrupt file is kept (never silently replaced by defaults), saves keep the file's mode,
and a failed save leaves the old file and no temp file behind."""
from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from webui.core.errors import WebUIError
from webui.core.options import Options

CORRUPT = b'{"sd_vae": "mine.vae.pt", "samples_format": "jpg",\n  oops \xff truncated'


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("content", [CORRUPT, b"[1, 2, 3]"])
def test_a_corrupt_config_is_kept_as_a_bad_copy_and_reported(tmp_path, caplog, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="webui.core.options"):
        options = Options(path)
    assert options.get("sd_vae") == "Automatic"
    bad = tmp_path / "config.json.bad"
    assert bad.read_bytes() == content
    assert "config.json.bad" in options.load_warning and "defaults" in options.load_warning
    assert any("config.json.bad" in record.getMessage() for record in caplog.records)
    options.update({"samples_format": "webp"})  # the next save writes a fresh file; the copy stays
    assert json.loads(path.read_text())["samples_format"] == "webp"
    assert bad.read_bytes() == content


def test_an_earlier_bad_copy_is_not_overwritten(tmp_path):
    path = tmp_path / "config.json"
    (tmp_path / "config.json.bad").write_bytes(b"first")
    path.write_bytes(b"second {")
    options = Options(path)
    assert (tmp_path / "config.json.bad").read_bytes() == b"first"
    copies = [p for p in tmp_path.iterdir() if p.name.startswith("config.json.bad") and p.read_bytes() == b"second {"]
    assert len(copies) == 1 and copies[0].name in options.load_warning


def test_a_good_or_missing_config_has_no_warning(tmp_path):
    assert Options(tmp_path / "config.json").load_warning == ""
    (tmp_path / "config.json").write_text('{"samples_format": "jpg"}')
    options = Options(tmp_path / "config.json")
    assert options.load_warning == "" and options.get("samples_format") == "jpg"
    assert files_in(tmp_path) == ["config.json"]


def test_save_keeps_the_file_mode(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"samples_format": "jpg"}')
    path.chmod(0o600)
    Options(path).update({"samples_format": "png"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["samples_format"] == "png"
    path.chmod(0o640)
    Options(path).update({"samples_format": "webp"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_new_config_gets_the_usual_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        Options(tmp_path / "config.json").update({"samples_format": "jpg"})
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == 0o644


def test_a_failed_rename_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text('{"samples_format": "jpg"}')
    before = path.read_bytes()
    options = Options(path)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(WebUIError, match="No space left on device"):
        options.update({"samples_format": "png"})
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["config.json"]


def test_a_value_that_cannot_be_written_leaves_the_old_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"samples_format": "jpg"}')
    before = path.read_bytes()
    options = Options(path)
    with pytest.raises(WebUIError, match="config.json"):
        options.update({"some_extension_key": {1, 2}})  # a set: not JSON
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["config.json"]
    options.update({"samples_format": "png"})  # the bad value did not stick; later saves work
    assert json.loads(path.read_text()) == {"samples_format": "png"}
