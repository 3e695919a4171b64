"""ModelDefaultsService: the native size of the loaded model, of a file before it is loaded (header only), of the
demo model, and the device note."""
from __future__ import annotations

import pytest

from tests.conftest import make_data_dir, make_settings


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("defaults"), tiny_checkpoints, ("sd1", "sd2", "sdxl"))
    services = build_services(make_settings(data_dir, include_demo_model=True))
    yield services
    services.runtime.executor.shutdown()


@pytest.mark.slow
def test_native_size_from_the_file_before_loading_and_from_the_loaded_model(services, tiny_checkpoints):
    defaults = services.defaults
    assert services.models.current_checkpoint() is None
    assert defaults.native_size(tiny_checkpoints["sdxl"].name).side == 1024  # header read, nothing loaded
    assert defaults.native_size(tiny_checkpoints["sd2"].name).side == 512
    assert defaults.native_size("demo-shapes.safetensors").side == 64
    assert services.models.current_checkpoint() is None
    services.models.select_checkpoint(tiny_checkpoints["sdxl"].name)
    assert defaults.native_size().side == 1024 and defaults.native_size().family_label == "Stable Diffusion XL"
    services.models.select_checkpoint("demo-shapes.safetensors")
    assert defaults.native_size().side == 64
    note = defaults.device_note()
    assert note.startswith("Running on CPU (") and "64x64" in note
    assert "UNet/transformer in float32 (" in note  # the CPU fast path's choice (float32 in a default Settings)


def test_sd2_768_v_from_its_yaml(tmp_path, tiny_checkpoints):
    """A1111's `<name>.yaml` with `parameterization: "v"` marks an SD 2.x 768-v file before it is loaded."""
    import shutil

    from webui.services import build_services

    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sd2",))
    ckpt = data_dir / "models" / "Stable-diffusion" / tiny_checkpoints["sd2"].name
    shutil.copy(ckpt, ckpt.with_name("v-model.safetensors"))
    ckpt.with_name("v-model.yaml").write_text("model:\n  params:\n    parameterization: \"v\"\n")
    services = build_services(make_settings(data_dir))
    try:
        assert services.defaults.native_size("v-model.safetensors").side == 768
        assert services.defaults.native_size(tiny_checkpoints["sd2"].name).side == 512
    finally:
        services.runtime.executor.shutdown()
