"""The Train tab's "Preview dataset" as pictures with captions and a bucket table (`train_preview_view`, after
`train_preview`), through gradio_client against the real app."""
from __future__ import annotations

import pytest

from tests.conftest import serve_train_ui
from tests.ui.test_train_tab import form_args


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints, shapes_dataset):
    yield from serve_train_ui(tmp_path_factory.mktemp("train-preview"), tiny_checkpoints, shapes_dataset)


def test_preview_shows_pictures_with_captions_and_buckets(ui, shapes_dataset):
    services, client = ui
    args = form_args(services, shapes_dataset)
    summary, message = client.predict(*args, api_name="/train_preview")
    assert message == "" and summary["images"] == 6
    text, gallery, buckets = client.predict(summary, *args, api_name="/train_preview_view")
    assert text.startswith("**6 images** in 2 folders") and "steps per epoch" in text
    pictures = gallery["value"] if isinstance(gallery, dict) else gallery
    assert len(pictures) == 6 and all(item["caption"] for item in pictures)
    captions = {item["caption"] for item in pictures}
    on_disk = {path.read_text(encoding="utf-8").strip() for path in shapes_dataset.rglob("*.txt")}
    assert captions and captions <= on_disk  # each picture with its own caption file's text
    rows = (buckets.get("value") or buckets)["data"] if isinstance(buckets, dict) else buckets
    assert [row[0] for row in rows] == list(summary["buckets"]) and sum(int(r[1]) for r in rows) == 8


def test_preview_of_a_missing_dataset_says_so(ui):
    services, client = ui
    args = form_args(services, "no-such-folder")
    summary, message = client.predict(*args, api_name="/train_preview")
    assert summary is None and "Preview failed" in message
    text, _, _ = client.predict(summary, *args, api_name="/train_preview_view")
    assert text == ""
