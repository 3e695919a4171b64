"""Checkpoints through the model service: the start-up load falls back past a broken file and says why, a
switch inside a script's inline executor loads at once, and model lists hide server paths when folders are hidden."""
from __future__ import annotations

import pytest

from tests.conftest import make_data_dir, make_settings
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.settings import SecuritySettings
from webui.jobs.inline_executor import InlineExecutor


@pytest.fixture()
def data_dir(tmp_path, tiny_checkpoints):
    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sd1",))
    (data_dir / "models" / "Stable-diffusion" / "a-broken.safetensors").write_bytes(b"\x00not a checkpoint" * 50)
    return data_dir


def test_startup_load_falls_back_and_keeps_the_reason(data_dir):
    from webui.services import build_services

    services = build_services(make_settings(data_dir))
    try:
        models = services.models
        assert models.startup_message() == ""
        assert models.load_startup_model().result(timeout=120) == "tiny-sd1.safetensors"
        assert "a-broken.safetensors" in models.startup_message()
        assert models.current_checkpoint() == "tiny-sd1.safetensors" and not models.is_demo_model("tiny-sd1")
        inline = models.with_executor(InlineExecutor(CancelToken(), ProgressTracker()))
        assert inline.select_vae("None") == "None" and models.current_vae() == "None"
        assert services.options.get("sd_vae") == "None"
    finally:
        services.runtime.shutdown()


def test_model_lists_show_paths_relative_to_the_data_folder_when_hidden(data_dir):
    from webui.services import build_services

    services = build_services(make_settings(data_dir, security=SecuritySettings(hide_ui_dir_config=True)))
    try:
        names = {row["title"]: row["filename"] for row in services.models.sd_models()}
        assert names["tiny-sd1.safetensors"] == "models/Stable-diffusion/tiny-sd1.safetensors"
    finally:
        services.runtime.shutdown()
    services = build_services(make_settings(data_dir))
    try:
        names = {row["title"]: row["filename"] for row in services.models.sd_models()}
        assert names["tiny-sd1.safetensors"] == str(data_dir / "models" / "Stable-diffusion" / "tiny-sd1.safetensors")
    finally:
        services.runtime.shutdown()
