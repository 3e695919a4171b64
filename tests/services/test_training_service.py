"""The services' training section: submit by checkpoint title, the result appears in the LoRA list, dataset preview,
config import and presets."""
from __future__ import annotations

import json


def form(services, dataset, **changes):
    values = services.training_defaults()
    values.update({"output_name": "svc", "base_model": "tiny-sd1.safetensors", "dataset_dir": str(dataset),
                   "resolution": 32, "min_bucket_reso": 32, "max_bucket_reso": 64, "bucket_reso_steps": 32,
                   "max_train_steps": 3, "batch_size": 2, "network_dim": 4, **changes})
    return values


def test_submit_by_title_result_appears_in_lora_list(services, shapes_dataset):
    job = services.submit_training(form(services, shapes_dataset))
    assert job["status"] in ("queued", "running") and "-m webui.train" in job["command_text"]
    record = services.training.wait(job["id"], timeout=180)
    assert record.status == "done", (record.message, services.training_log(job["id"]))
    assert [name["name"] for name in services.lora_list()] == ["svc"]
    assert [step for step, _ in services.training_losses(job["id"])] == [1, 2, 3]
    assert services.training_jobs()[0]["id"] == job["id"]
    events, offset = services.training_events(job["id"])
    assert events[-1]["type"] == "done" and offset > 0


def test_preview_import_and_preset(services, shapes_dataset):
    summary = services.training_dataset_preview(form(services, shapes_dataset))
    assert summary["images"] == 6 and summary["steps_per_epoch"] == 4
    imported = services.import_training_config(json.dumps({
        "model_type": "lora", "lora_type": "standard", "lora_rank": 16, "tracker_run_name": "x",
        "pretrained_model_name_or_path": "tiny-sd1.safetensors", "push_to_hub": True}))
    assert imported["config"]["network_dim"] == 16 and imported["config"]["network_alpha"] == 16
    assert imported["ignored"] == ["push_to_hub"] and imported["format"] == "simpletuner"
    preset = json.loads(services.training_preset_json(form(services, shapes_dataset)))
    assert services.training_config(preset).output_dir == str(services.settings.paths.lora_dir)
    lycoris = services.training_config({**preset, "network_type": "lycoris", "lycoris": {
        "algo": "loha", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1}})
    assert lycoris.output_dir == str(services.settings.paths.lycoris_dir)
    assert "Lion" in services.training_choices()["optimizer"]
