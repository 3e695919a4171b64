"""Dataset parsing: kohya folders, captions, repeats, buckets, batch order, preview; config loading."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from webui.core.errors import ValidationError
from webui.testing.training_data import shape_image, write_kohya_dataset
from webui.training.config import LycorisSpec, TrainingConfig, config_from_json, config_to_json
from webui.training.config_files import load_config_file
from webui.training.dataset import (
    BucketSpec,
    CaptionPolicy,
    epoch_batches,
    preview,
    scan_dataset,
    steps_per_epoch,
)

FORMATS_LOKR = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 16,
                "apply_preset": {"target_module": ["Attention", "FeedForward"],
                                 "module_algo_map": {"Attention": {"factor": 16}, "FeedForward": {"factor": 8}}}}


def _config(root: Path, **fields) -> TrainingConfig:
    base = {"base_model": "x.safetensors", "dataset_dir": str(root), "resolution": 64, "min_bucket_reso": 32,
            "max_bucket_reso": 128, "bucket_reso_steps": 16}
    return TrainingConfig(**{**base, **fields})


def test_kohya_folders_repeats_and_captions(tmp_path):
    write_kohya_dataset(tmp_path, {"red thing": 3, "blue": 1}, images_per_folder=2, captions=False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "1_blue" / "001.caption").write_text("from a caption file", encoding="utf-8")
    dataset = scan_dataset(_config(tmp_path))
    by_name = {(item.path.parent.name, item.path.name): item for item in dataset.items}
    assert by_name[("3_red thing", "000.png")].caption == "red thing, a disc, flat colour"
    assert by_name[("3_red thing", "001.png")].caption == "red thing"  # folder name is the fallback
    assert by_name[("1_blue", "001.png")].caption == "from a caption file"
    assert [item.repeats for item in dataset.items] == [1, 1, 3, 3]
    assert len(dataset.samples()) == 2 * 1 + 2 * 3
    assert any("notes" in note for note in dataset.notes)


@pytest.mark.parametrize(("images", "repeats", "batch", "expected"), [
    (2, 2, 1, 4), (2, 3, 2, 3), (3, 1, 4, 1), (4, 5, 3, 7)])
def test_steps_per_epoch_is_samples_over_batch(tmp_path, images, repeats, batch, expected):
    write_kohya_dataset(tmp_path, {"a": repeats}, images_per_folder=images)
    dataset = scan_dataset(_config(tmp_path))
    assert steps_per_epoch(dataset, batch) == expected
    assert len(epoch_batches(dataset, batch, seed=1, epoch=0)) == expected


def test_buckets_never_mix_and_order_is_deterministic(tmp_path):
    write_kohya_dataset(tmp_path, {"a": 3, "b": 2}, images_per_folder=5, sizes=((64, 64), (96, 48), (48, 96)))
    dataset = scan_dataset(_config(tmp_path))
    assert len(dataset.buckets) == 3
    batches = epoch_batches(dataset, 3, seed=5, epoch=2)
    for batch in batches:
        assert len({dataset.items[i].bucket for i in batch}) == 1
    assert sorted(i for b in batches for i in b) == sorted(dataset.samples())
    assert batches == epoch_batches(dataset, 3, seed=5, epoch=2)
    assert batches != epoch_batches(dataset, 3, seed=5, epoch=3)
    # per bucket ceil: counts per bucket / 3 rounded up
    assert steps_per_epoch(dataset, 3) == len(batches)


def test_bucket_resolutions_and_no_upscale():
    spec = BucketSpec(64, 32, 128, 16, no_upscale=False)
    sizes = spec.resolutions()
    assert (64, 64) in sizes and all(w * h <= 64 * 64 for w, h in sizes)
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in sizes)
    wide = spec.bucket_for((200, 100), sizes)
    assert wide[0] > wide[1]
    small = BucketSpec(64, 32, 128, 16, no_upscale=True).bucket_for((40, 36), sizes)
    assert small == (32, 32)
    assert BucketSpec(64, 32, 128, 16, False, enabled=False).bucket_for((200, 100), sizes) == (64, 64)


def test_caption_shuffle_keep_tokens_and_dropout():
    caption = "sks person, red hat, smiling, outdoors, sunny"
    rng = random.Random(0)
    shuffled = {CaptionPolicy(True, 1).apply(caption, rng) for _ in range(20)}
    assert all(s.startswith("sks person, ") for s in shuffled) and len(shuffled) > 1
    assert CaptionPolicy(False, 0, dropout=1.0).apply(caption, rng) == ""
    assert CaptionPolicy().apply(caption, rng) == caption


def test_preview_summary(tmp_path):
    write_kohya_dataset(tmp_path, {"cat": 4}, images_per_folder=3)
    summary = preview(_config(tmp_path, batch_size=2, epochs=3))
    assert summary["folders"][0]["images"] == 3 and summary["folders"][0]["repeats"] == 4
    assert summary["steps_per_epoch"] == 6 and summary["total_steps"] == 18
    assert summary["folders"][0]["caption_samples"][0].startswith("cat, a disc")
    assert summary["buckets"] == {"64x64": 12}


def test_empty_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "5_empty").mkdir()
    with pytest.raises(ValidationError, match="no images"):
        scan_dataset(_config(tmp_path))


def test_preset_round_trip_keeps_every_field(tmp_path):
    config = _config(tmp_path, network_type="lycoris", lycoris=LycorisSpec.from_json(FORMATS_LOKR), epochs=3,
                     optimizer="Lion", shuffle_caption=True)
    data = json.loads(json.dumps(config_to_json(config)))
    again, ignored = config_from_json({**data, "unknown_option": 1})
    assert again == config and ignored == ["unknown_option"]


@pytest.mark.parametrize(("data", "message"), [
    ({"algo": "lokr", "linear_dim": 4, "linear_alpha": 1}, "multiplier"),
    ({"algo": "lokr", "multiplier": 1}, "linear_dim, linear_alpha"),
    ({"algo": "boft", "multiplier": 1, "linear_dim": 4, "linear_alpha": 1}, "not supported"),
    ([1, 2], "JSON object"),
])
def test_lycoris_config_errors_are_clear(data, message):
    with pytest.raises(ValidationError, match=message):
        LycorisSpec.from_json(data)


def test_simpletuner_config_with_backends(tmp_path):
    data_dir = tmp_path / "subject"
    data_dir.mkdir()
    shape_image(0, (32, 32)).save(data_dir / "a_red_disc.png")
    (tmp_path / "lycoris_config.json").write_text(json.dumps(FORMATS_LOKR))
    (tmp_path / "multidatabackend.json").write_text(json.dumps([
        {"id": "subject", "type": "local", "instance_data_dir": str(data_dir), "caption_strategy": "filename",
         "repeats": 2, "resolution": 64, "resolution_type": "pixel_area", "crop": True},
        {"id": "text-embeds", "type": "local", "dataset_type": "text_embeds", "default": True},
    ]))
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({
        "model_type": "lora", "lora_type": "lycoris", "lycoris_config": "lycoris_config.json",
        "model_family": "sd1x", "pretrained_model_name_or_path": "/models/x.safetensors",
        "data_backend_config": "multidatabackend.json", "output_dir": str(tmp_path / "out"),
        "tracker_run_name": "run1", "train_batch_size": 1, "learning_rate": "4e-5", "max_train_steps": 10,
        "num_train_epochs": 0, "optimizer": "optimi-lion", "lr_scheduler": "constant", "seed": 42,
        "mixed_precision": "bf16", "gradient_checkpointing": "true", "checkpoint_step_interval": 5,
        "checkpoints_total_limit": 2, "resume_from_checkpoint": "latest", "base_model_precision": "int8-quanto",
        "--user_prompt_library": "library.json", "report_to": "tensorboard", "validation_guidance": 2.0,
    }))
    loaded = load_config_file(config_file)
    config = loaded.config
    assert config.network_type == "lycoris" and config.lycoris.extra["factor"] == 16
    assert config.model_family == "sd1" and config.output_name == "run1" and config.learning_rate == 4e-5
    assert config.optimizer == "Lion" and config.max_train_steps == 10 and config.gradient_checkpointing is True
    assert config.save_every_n_steps == 5 and config.save_last_k == 2 and config.resume == "latest"
    assert config.subsets[0].repeats == 3 and config.subsets[0].caption_strategy == "filename"
    assert config.resolution == 64 and config.sample_prompts == "library.json"
    assert loaded.ignored == ("report_to", "validation_guidance")
    assert any("base_model_precision" in note and "not applied" in note for note in loaded.notes)
    assert scan_dataset(config).items[0].caption == "a red disc"


def test_simpletuner_unsupported_values_are_clear(tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"model_type": "full", "pretrained_model_name_or_path": "x"}))
    with pytest.raises(ValidationError, match="model_type 'full'"):
        load_config_file(config_file)
    config_file.write_text(json.dumps({"model_type": "lora", "lora_type": "lycoris"}))
    with pytest.raises(ValidationError, match="lycoris_config"):
        load_config_file(config_file)
