"""Extras (single image, folder) and options (output folders confined, model options switch the model, memory
options re-applied) through their services; the queue's controls when nothing runs."""
from __future__ import annotations

import pytest
from PIL import Image

from tests.conftest import make_data_dir, make_settings
from webui.core.errors import ModelNotFoundError, ValidationError
from webui.core.path_policy import PathNotAllowedError
from webui.engine.upscale.postprocess import ExtrasRequest


@pytest.fixture()
def services(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    services = build_services(make_settings(make_data_dir(tmp_path / "data", tiny_checkpoints, ("sd1",))))
    yield services
    services.runtime.shutdown()


def test_extras_upscale_and_save(services):
    [(image, path, info)] = services.upscale.submit_extras([Image.new("RGB", (16, 8), "red")],
                                                           ExtrasRequest(scale_by=2.0)).result()
    assert image.size == (32, 16) and path.parent == services.settings.paths.outputs_dir / "extras-images"
    assert "Lanczos" in info and Image.open(path).size == (32, 16)
    with pytest.raises(ValidationError):
        services.upscale.submit_extras([Image.new("RGB", (16, 8))], ExtrasRequest(scale_by=float("nan")))
    with pytest.raises(ModelNotFoundError, match="No upscaler named 'Magic'"):
        services.upscale.submit_extras([Image.new("RGB", (16, 8))], ExtrasRequest(upscaler_1="Magic"))
    assert services.upscale.hires_upscaler_names()[0] == "Latent"


def test_extras_folder_reads_and_writes_inside_the_data_folder(services, tmp_path):
    source = services.settings.paths.data_dir / "in"
    source.mkdir()
    Image.new("RGB", (8, 8)).save(source / "a.png")
    (source / "broken.png").write_bytes(b"not an image")
    results = services.upscale.submit_extras_folder("in", "out", ExtrasRequest(scale_by=2.0)).result()
    assert [path.parent.name for _, path, _ in results] == ["out"] and len(list((source.parent / "out").iterdir())) == 1
    with pytest.raises(PathNotAllowedError):
        services.upscale.submit_extras_folder(str(tmp_path), "", ExtrasRequest())


def test_options_confine_folders_and_switch_models(services, tmp_path):
    options = services.options
    with pytest.raises(PathNotAllowedError):
        options.set_options({"outdir_txt2img_samples": str(tmp_path / "elsewhere")})
    options.set_options({"outdir_txt2img_samples": "mine", "vae_tiling": True})
    assert options.get("outdir_txt2img_samples") == "mine" and options.get_options()["vae_tiling"] is True
    assert options.get_options()["sd_model_checkpoint"] is None
    options.set_options({"sd_model_checkpoint": "tiny-sd1"})
    assert options.get_options()["sd_model_checkpoint"] == "tiny-sd1.safetensors"
    assert services.models.current_checkpoint() == "tiny-sd1.safetensors"


def test_queue_controls_when_idle(services):
    assert services.queue.interrupt() is False and services.queue.skip() is False
    assert services.queue.current_preview() is None
    assert services.queue.progress().job_count == 0
