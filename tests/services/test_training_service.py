"""The services' training section: submit by checkpoint title, the result appears in the LoRA list, dataset preview,
config import and presets."""
from __future__ import annotations

import json

from tests.conftest import submit_form


def form(services, dataset, **changes):
    values = services.training.defaults()
    values.update({"output_name": "svc", "base_model": "tiny-sd1.safetensors", "dataset_dir": str(dataset),
                   "resolution": 32, "min_bucket_reso": 32, "max_bucket_reso": 64, "bucket_reso_steps": 32,
                   "max_train_steps": 3, "batch_size": 2, "network_dim": 4, **changes})
    return values


def test_submit_by_title_result_appears_in_lora_list(services, shapes_dataset):
    job = submit_form(services, form(services, shapes_dataset))
    assert job.record.status in ("queued", "running") and "-m webui.train" in job.command_text
    record = services.runtime.training_worker.wait(job.record.id, timeout=180)
    assert record.status == "done", (record.message, services.training.log(job.record.id))
    assert [name["name"] for name in services.networks.lora_list()] == ["svc"]
    assert [step for step, _ in services.training.losses(job.record.id)] == [1, 2, 3]
    assert services.training.jobs()[0].record.id == job.record.id
    events, offset = services.training.events(job.record.id)
    assert events[-1]["type"] == "done" and offset > 0


def test_preview_import_and_preset(services, shapes_dataset):
    summary = services.training.dataset_preview(form(services, shapes_dataset))
    assert summary["images"] == 6 and summary["steps_per_epoch"] == 4
    imported = services.training.import_config(json.dumps({
        "model_type": "lora", "lora_type": "standard", "lora_rank": 16, "tracker_run_name": "x",
        "pretrained_model_name_or_path": "tiny-sd1.safetensors", "push_to_hub": True}))
    assert imported.values["network_dim"] == 16 and imported.values["network_alpha"] == 16
    assert list(imported.ignored) == ["push_to_hub"] and imported.source_format == "simpletuner"
    preset = json.loads(services.training.preset_json(form(services, shapes_dataset)))
    assert services.training.form_config(preset).output_dir == str(services.settings.paths.lora_dir)
    lycoris = services.training.form_config({**preset, "network_type": "lycoris", "lycoris": {
        "algo": "loha", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1}})
    assert lycoris.output_dir == str(services.settings.paths.lycoris_dir)
    assert "Lion" in services.training.choices()["optimizer"]
