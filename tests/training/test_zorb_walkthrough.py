"""The README's LoRA walkthrough, step by step at reduced size: generate the "zorb" dataset, load the shipped preset
into the Train form, train on the demo model, then use the LoRA in txt2img, in an X/Y/Z plot over its weight and
in "Compare epochs". Only the sizes change (8 images, 2 epochs); the commands and files are the README's."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_settings, submit_form
from tools.demo_dataset import main as demo_dataset_main
from webui.core.requests import GenerationRequest
from webui.core.settings import SecuritySettings
from webui.core.xyz_axes import AxisInput

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESET = REPO_ROOT / "tools" / "zorb-lora.json"


@pytest.fixture()
def services(tmp_path):
    from webui.services import DEMO_MODEL_PATH, build_services

    if not DEMO_MODEL_PATH.is_file():
        pytest.skip("the demo model is not built")
    # The README runs with the repository as the data folder; here the data folder is a temporary one, and the
    # preset's folder is allowed as the README's user could with --gradio-allowed-path.
    security = SecuritySettings(allowed_paths=(PRESET.parent,))
    services = build_services(make_settings(tmp_path / "data", include_demo_model=True, security=security))
    yield services
    services.runtime.training_worker.shutdown(terminate=True)
    services.runtime.executor.shutdown()


def test_zorb_walkthrough_at_reduced_size(services, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the README runs everything from the repository root
    dataset = services.settings.paths.data_dir / "datasets" / "zorb"  # the preset's relative `datasets/zorb`
    demo_dataset_main(["kohya", "--out", str(dataset), "--count", "8"])
    assert sorted(p.name for p in (dataset / "1_zorb").iterdir())[:2] == ["000.png", "000.txt"]

    imported = services.training.import_config(str(PRESET))  # "Load into form" with the preset's path
    assert list(imported.ignored) == [] and imported.values["output_name"] == "zorb"
    values = {**imported.values, "epochs": 2, "batch_size": 4,
              "save_every_n_epochs": 1, "sample_every_n_epochs": 1}
    job = submit_form(services, values)
    record = services.runtime.training_worker.wait(job.record.id, timeout=300)
    assert record.status == "done", (record.message, services.training.log(job.record.id))
    assert {"zorb", "zorb-000001"} <= {row["name"] for row in services.networks.lora_list()}

    plain = GenerationRequest(prompt="a red zorb on a white background", steps=8, width=64, height=64,
                              cfg_scale=6.0, seed=7, sampler_name="DPM++ 2M", save_images=False)
    tagged = dataclasses.replace(plain, prompt=plain.prompt + " <lora:zorb:1>")
    without, with_lora = services.generation.txt2img(plain), services.generation.txt2img(tagged)
    assert with_lora.warnings == () and "zorb: " in with_lora.infotexts[0]  # Lora hashes recorded
    assert not np.array_equal(np.asarray(without.images[0].image), np.asarray(with_lora.images[0].image))

    plot = services.scripts.run_xyz_plot(tagged, [AxisInput("Prompt S/R", "zorb:1, zorb:0.5, zorb:0")])
    cells = [np.asarray(image.image) for image in plot.sub_images]
    assert len(plot.grids) == 1 and len(cells) == 3
    assert np.array_equal(cells[0], np.asarray(with_lora.images[0].image))
    assert np.array_equal(cells[2], np.asarray(without.images[0].image))  # weight 0 = the model alone

    compared = services.training.compare_epochs(job.record.id).result()
    assert [image.image.size for image in compared.sub_images] == [(64, 64), (64, 64)]
