"""Trainer options: epoch saves + keep-last-K, samples from prompt files, preview, caches reused across runs,
optimizers and schedules, LyCORIS preset isolation."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from tests.conftest import FORMATS_LOKR, tiny_config
from tests.training.test_trainer import run
from webui.core.errors import ValidationError
from webui.training.config import OPTIMIZERS, SCHEDULERS, LycorisSpec, TrainingConfig
from webui.training.events import iter_events
from webui.training.lycoris_network import PRESET_CLASS_ALIASES, map_preset
from webui.training.optim import StableAdamW, autocast_dtype, create_optimizer, create_scheduler
from webui.training.samples import load_sample_prompts, parse_prompt_line


def test_epoch_saves_keep_last_k_samples_and_preview(tiny_checkpoints, shapes_dataset, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na red disc --n blurry --w 32 --h 32 --d 5 --l 4.5 --s 2\n", encoding="utf-8")
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=0, epochs=4, batch_size=4,
                         save_every_n_epochs=1, save_last_k=2, sample_every_n_epochs=2,
                         sample_prompts=str(prompts))
    _, result = run(config, tmp_path)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["tiny-000002.safetensors",
                                                                 "tiny-000003.safetensors", "tiny.safetensors"]
    assert (out / "tiny.preview.png").is_file()
    events = list(iter_events(tmp_path / "run" / "events.jsonl"))
    samples = [e for e in events if e["type"] == "sample"]
    assert [e["epoch"] for e in samples] == [2, 4] and all(len(e["paths"]) == 1 for e in samples)
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 3, 4]
    assert result.global_step == 4 * 2  # 8 samples per epoch / batch 4


def test_prompt_line_and_library_parsing(tmp_path):
    sample = parse_prompt_line("a cat, sitting --n ugly, blurry --w 640 --h 512 --d 7 --l 6.5 --s 12 --ss euler")
    assert (sample.prompt, sample.negative, sample.width, sample.height) == ("a cat, sitting", "ugly, blurry", 640,
                                                                              512)
    assert (sample.seed, sample.cfg_scale, sample.steps) == (7, 6.5, 12)
    library = tmp_path / "library.json"
    library.write_text(json.dumps({"anime_<token>": "anime <token>", "woman": "a woman"}))
    prompts = load_sample_prompts(str(library), "main prompt")
    assert [p.name for p in prompts] == ["validation", "anime__token_", "woman"]
    with pytest.raises(ValidationError, match="--w"):
        parse_prompt_line("x --w wide")


def test_caches_are_reused_across_runs_and_change_nothing(tiny_checkpoints, shapes_dataset, tmp_path):
    plain = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=3)
    cached = dataclasses.replace(plain, cache_latents=True, cache_text_embeddings=True)
    _, reference = run(plain, tmp_path / "plain")
    first, result_1 = run(cached, tmp_path, name="first")
    second, result_2 = run(cached, tmp_path, name="second")
    assert reference.losses == result_1.losses == result_2.losses
    assert first.session.latents.misses == 6 and second.session.latents.misses == 0
    assert second.session.latents.hits == 6
    assert list((tmp_path / "cache" / "training" / "text").rglob("*.safetensors"))


@pytest.mark.parametrize(("name", "package"), [("AdamW8bit", "bitsandbytes"), ("Lion", "lion-pytorch"),
                                               ("Prodigy", "prodigyopt")])
def test_optional_optimizers_name_their_package(name, package):
    try:
        create_optimizer([{"params": [torch.nn.Parameter(torch.zeros(2))]}], TrainingConfig(optimizer=name))
    except ValidationError as err:
        assert package in str(err)


@pytest.mark.parametrize("name", ["Lion", "Prodigy", "StableAdamW", "AdamW"])
def test_shipped_optimizers_train(name):
    """Lion and Prodigy come with the requirements: a step moves the weights against the gradient."""
    param = torch.nn.Parameter(torch.ones(4))
    optimizer = create_optimizer([{"params": [param]}], TrainingConfig(optimizer=name, learning_rate=1e-2))
    (param * torch.arange(1.0, 5.0)).sum().backward()
    optimizer.step()
    assert torch.all(param.detach() < 1.0), (name, param)


def test_every_optimizer_and_schedule_is_known():
    assert set(OPTIMIZERS) == {"AdamW", "AdamW8bit", "Lion", "Prodigy", "StableAdamW"}
    param = torch.nn.Parameter(torch.ones(3))
    for schedule in SCHEDULERS:
        optimizer = create_optimizer([{"params": [param]}], TrainingConfig(optimizer="AdamW"))
        scheduler = create_scheduler(optimizer, TrainingConfig(lr_scheduler=schedule, lr_warmup_steps=2), 10)
        for _ in range(3):
            optimizer.step()
            scheduler.step()
        assert scheduler.get_last_lr()[0] >= 0


def test_stable_adamw_clips_a_spike():
    param = torch.nn.Parameter(torch.zeros(4))
    optimizer = StableAdamW([param], lr=0.1, weight_decay=0.0)
    for _ in range(5):
        param.grad = torch.full((4,), 1e-3)
        optimizer.step()
    before = param.detach().clone()
    param.grad = torch.full((4,), 1e3)  # a spike: Adam would take a near-full lr step, StableAdamW much less
    optimizer.step()
    assert (param - before).abs().max() < 0.1


def test_mixed_precision_on_cpu_is_reported():
    assert autocast_dtype("no", torch.device("cpu")) == (None, None)
    dtype, note = autocast_dtype("fp16", torch.device("cpu"))
    assert dtype is None and "not applied" in note
    assert autocast_dtype("bf16", torch.device("cpu"))[0] == torch.bfloat16


def test_lycoris_preset_is_reset_per_job_and_mapped_per_family(tiny_checkpoints, shapes_dataset, tmp_path):
    from lycoris import LycorisNetwork

    before = (list(LycorisNetwork.TARGET_REPLACE_MODULE), dict(LycorisNetwork.MODULE_ALGO_MAP))
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, network_type="lycoris", max_train_steps=1,
                         lycoris=LycorisSpec.from_json(FORMATS_LOKR))
    run(config, tmp_path)
    assert (list(LycorisNetwork.TARGET_REPLACE_MODULE), dict(LycorisNetwork.MODULE_ALGO_MAP)) == before
    mapped, notes = map_preset(FORMATS_LOKR["apply_preset"], PRESET_CLASS_ALIASES["auraflow"],
                               {"Attention", "AuraFlowFeedForward"}, "transformer")
    assert mapped["target_module"] == ["Attention", "AuraFlowFeedForward"] and not notes
    assert mapped["module_algo_map"]["AuraFlowFeedForward"] == {"factor": 8}
    _, notes = map_preset({"target_module": ["NoSuchBlock"]}, {}, {"Attention"}, "unet")
    assert "NoSuchBlock" in notes[0]
