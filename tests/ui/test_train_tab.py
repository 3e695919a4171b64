"""The Train tab through gradio_client: preview, submit, progress, result in the LoRA list, presets round-trip."""
from __future__ import annotations

import json

import pytest

from tests.conftest import serve_train_ui
from webui.ui.tabs.train import EXAMPLE_LYCORIS, GROUPS


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints, shapes_dataset):
    yield from serve_train_ui(tmp_path_factory.mktemp("train-ui"), tiny_checkpoints, shapes_dataset)


def form_args(services, dataset, **changes) -> list:
    values = services.training.defaults()
    values.update({"output_name": "ui-lora", "base_model": "tiny-sd1.safetensors", "dataset_dir": str(dataset),
                   "resolution": 32, "min_bucket_reso": 32, "max_bucket_reso": 64, "bucket_reso_steps": 32,
                   "max_train_steps": 3, "batch_size": 2, "network_dim": 4, "sample_every_n_steps": 3,
                   "sample_prompt_text": "a disc --w 32 --h 32 --s 2", **changes})
    keys = ["output_name", "base_model", "dataset_dir", *(f.key for _, fields in GROUPS for f in fields)]
    return [values[key] for key in keys] + [json.dumps(EXAMPLE_LYCORIS)]


def test_train_tab_submit_progress_and_result(ui, shapes_dataset):
    services, client = ui
    preview, message = client.predict(*form_args(services, shapes_dataset), api_name="/train_preview")
    assert message == "" and preview["steps_per_epoch"] == 4
    message, jobs = client.predict(*form_args(services, shapes_dataset), api_name="/train_submit")
    job_id = jobs["value"] if isinstance(jobs, dict) else jobs
    assert job_id and job_id in message
    record = services.runtime.training_worker.wait(job_id, timeout=180)
    assert record.status == "done", (record.message, services.training.log(job_id))
    status, plot, samples, log = client.predict(job_id, api_name="/train_job_view")
    assert "done" in status and "step 3/3" in status and "webui.train" in status
    assert len(samples) == 1
    assert "ui-lora" in [row["name"] for row in services.networks.lora_list()]
    assert (services.settings.paths.lora_dir / "ui-lora.preview.png").is_file()


def test_train_tab_presets_and_errors(ui, shapes_dataset):
    services, client = ui
    args = form_args(services, shapes_dataset, optimizer="StableAdamW")
    preset, message = client.predict(*args, api_name="/train_save_preset")
    assert json.loads(preset)["optimizer"] == "StableAdamW" and message == ""
    *filled, message = client.predict(json.dumps({"model_type": "lora", "lora_type": "lycoris", "lycoris_config":
                                                  EXAMPLE_LYCORIS, "lora_rank": 8, "foo": 1}),
                                      api_name="/train_import_preset")
    values = [update.get("value") for update in filled if isinstance(update, dict)]
    assert "Ignored keys: foo" in message and "lycoris" in values and 8 in values
    message, _ = client.predict(*form_args(services, shapes_dataset, dataset_dir=""), api_name="/train_submit")
    assert "Not started" in message and "dataset" in message


def test_compare_epochs_button_draws_a_grid_over_the_saved_files(ui, shapes_dataset):
    services, client = ui
    args = form_args(services, shapes_dataset, output_name="cmp", max_train_steps=0, epochs=2,
                     save_every_n_epochs=1, sample_every_n_steps=0)
    _, jobs = client.predict(*args, api_name="/train_submit")
    job_id = jobs["value"] if isinstance(jobs, dict) else jobs
    assert services.runtime.training_worker.wait(job_id, timeout=180).status == "done", services.training.log(job_id)
    grid, message = client.predict(job_id, "", api_name="/train_compare_epochs")
    assert message.startswith("Compared 2 files"), message
    from PIL import Image

    with Image.open(grid if isinstance(grid, str) else grid["path"]) as image:
        assert image.width == 2 * 32 and image.height > 32  # two 32 px cells side by side, legends above
    future = services.training.compare_epochs(job_id, "a disc")
    result = future.result()
    assert [image.image.size for image in result.sub_images] == [(32, 32), (32, 32)]
    cells = [image.infotext for image in result.sub_images]
    assert "<lora:cmp-000001:1>" in cells[0] and "<lora:cmp:1>" in cells[1]

    _, jobs = client.predict(*form_args(services, shapes_dataset, output_name="single", sample_every_n_steps=0),
                             api_name="/train_submit")
    single = jobs["value"] if isinstance(jobs, dict) else jobs
    assert services.runtime.training_worker.wait(single, timeout=180).status == "done"
    grid, message = client.predict(single, "", api_name="/train_compare_epochs")
    assert grid is None and "at least two" in message
