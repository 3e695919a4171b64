"""The trainer on tiny models: loss falls, saved files reproduce the trained network exactly through the Extra
Networks loader (AdapterSet), the LoKr config of docs/FORMATS.md trains, and cancel + resume equals an
uninterrupted run."""
from __future__ import annotations

import dataclasses
import json

import pytest
import safetensors
import torch

from tests.conftest import FORMATS_LOKR, tiny_config
from webui.engine.models.loader import load_checkpoint
from webui.engine.networks.adapters import AdapterRequest, AdapterSet, build_module_index
from webui.training.config import LycorisSpec
from webui.training.events import EventSink, iter_events
from webui.training.families import hooks_for
from webui.training.session import TrainerPaths
from webui.training.trainer import Trainer


def run(config, root, stop=lambda: False, name="run"):
    paths = TrainerPaths(root / "out", root / name, root / "cache")
    sink = EventSink(root / name / "events.jsonl")
    trainer = Trainer(config, paths, sink, stop)
    try:
        return trainer, trainer.run()
    finally:
        sink.close()


def merged(checkpoint, file, cache):
    pipe = load_checkpoint(checkpoint, cache_dir=cache).pipeline
    adapters = AdapterSet(pipe)
    notes = adapters.apply([AdapterRequest(file.stem, file, str(file))])
    assert notes == []
    return pipe, adapters


def unet_inputs(pipe, seed=0):
    gen = torch.Generator().manual_seed(seed)
    cross = pipe.unet.config.cross_attention_dim
    kwargs = {}
    if getattr(pipe, "text_encoder_2", None) is not None:
        pooled = pipe.text_encoder_2.config.projection_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(1, pooled, generator=gen),
                                       "time_ids": torch.tensor([[32.0, 32, 0, 0, 32, 32]])}
    return torch.randn(1, 4, 16, 16, generator=gen), torch.randn(1, 77, cross, generator=gen), kwargs


@torch.no_grad()
def assert_same_outputs(trained, base):
    sample, context, kwargs = unet_inputs(base)
    trained.unet.eval()
    expected = trained.unet(sample, torch.tensor([400]), encoder_hidden_states=context, **kwargs).sample
    actual = base.unet(sample, torch.tensor([400]), encoder_hidden_states=context, **kwargs).sample
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    ids = torch.randint(0, 49000, (1, 77), generator=torch.Generator().manual_seed(1))
    for name in ("text_encoder", "text_encoder_2"):
        if getattr(base, name, None) is not None:
            torch.testing.assert_close(getattr(base, name)(ids)[0], getattr(trained, name).eval()(ids)[0],
                                       atol=1e-5, rtol=0)


@torch.no_grad()
def eval_loss(pipe, trainer) -> float:
    """Mean loss over the dataset on fixed noise and timesteps (training losses are too noisy to compare)."""
    session = trainer.session
    hooks = hooks_for(session.family, pipe, "epsilon")
    gen = torch.Generator().manual_seed(123)
    losses = []
    for item in session.dataset.items:
        latents = session.latents.encode(item).unsqueeze(0)
        cond = hooks.encode_text([item.caption], torch.device("cpu"))
        for _ in range(4):
            noise = torch.randn(latents.shape, generator=gen)
            timesteps = hooks.sample_timesteps(1, gen)
            noisy, target = hooks.noisy_and_target(latents, noise, timesteps)
            losses.append(torch.nn.functional.mse_loss(hooks.predict(pipe.unet, noisy, timesteps, cond,
                                                                     item.bucket), target).item())
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def lora_run(tiny_checkpoints, shapes_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-run")
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=30, learning_rate=3e-2,
                         train_text_encoder=True, text_encoder_lr=1e-3)
    trainer, result = run(config, root)
    return root, config, trainer, result


def test_short_lora_run_lowers_the_loss(lora_run, tiny_checkpoints):
    root, _, trainer, result = lora_run
    assert result.status == "done" and result.global_step == 30
    base, adapters = merged(tiny_checkpoints["sd1"], result.final_file, root / "cache")
    after = eval_loss(base, trainer)
    adapters.restore()
    before = eval_loss(base, trainer)
    assert after < before * 0.97, (before, after)


def test_saved_lora_reproduces_the_trained_model_through_adapterset(lora_run, tiny_checkpoints):
    root, _, trainer, result = lora_run
    base, _ = merged(tiny_checkpoints["sd1"], result.final_file, root / "cache")
    assert_same_outputs(trainer.session.loaded.pipeline, base)


def test_saved_lora_keys_alpha_and_metadata(lora_run):
    _, config, _, result = lora_run
    with safetensors.safe_open(str(result.final_file), "pt") as handle:
        keys = list(handle.keys())
        meta = handle.metadata()
        alpha = handle.get_tensor(next(k for k in keys if k.endswith(".alpha")))
    assert any(k.startswith("lora_unet_down_blocks_1_attentions_0_") for k in keys)
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj") for k in keys)
    assert not any(k.startswith(("lora_te1_", "lora_te_encoder")) for k in keys)
    assert float(alpha) == 2.0  # the real alpha, not the rank (4)
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_network_dim"] == "4"
    assert meta["ss_network_alpha"] == "2" and meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_output_name"] == "tiny" and meta["ss_resolution"] == "(32, 32)"
    assert json.loads(meta["ss_tag_frequency"])["1_shapes"]["flat colour"] == 4
    for key in ("ss_num_epochs", "ss_training_started_at", "sshs_model_hash"):
        assert meta[key]


def test_events_report_progress(lora_run):
    root, _, _, _ = lora_run
    events = list(iter_events(root / "run" / "events.jsonl"))
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == 30 and steps[-1]["step"] == 30 and steps[-1]["total_steps"] == 30
    assert all(e["its"] > 0 and e["eta_s"] >= 0 and e["loss"] > 0 for e in steps)
    assert events[0]["type"] == "started" and events[-1]["type"] == "done"


def test_formats_lokr_json_trains_on_sd1(tiny_checkpoints, shapes_dataset, tmp_path):
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, network_type="lycoris", max_train_steps=3,
                         lycoris=LycorisSpec.from_json(FORMATS_LOKR), output_dir=str(tmp_path / "out"))
    trainer, result = run(config, tmp_path)
    assert result.status == "done" and not trainer.session.network.notes
    with safetensors.safe_open(str(result.final_file), "pt") as handle:
        keys = list(handle.keys())
        assert handle.metadata()["ss_network_module"] == "lycoris.kohya"
    assert any(k.endswith(".lokr_w1") for k in keys) and any("_ff_net_" in k for k in keys)
    index = build_module_index(load_checkpoint(tiny_checkpoints["sd1"], cache_dir=tmp_path / "cache").pipeline)
    assert {k.rsplit(".", 1)[0] for k in keys} <= set(index)
    base, _ = merged(tiny_checkpoints["sd1"], result.final_file, tmp_path / "cache")
    assert_same_outputs(trainer.session.loaded.pipeline, base)


@pytest.mark.parametrize("algo", ["loha", "locon"])
def test_other_lycoris_algorithms_round_trip(tiny_checkpoints, shapes_dataset, tmp_path, algo):
    spec = LycorisSpec.from_json({**FORMATS_LOKR, "algo": algo, "linear_dim": 4, "linear_alpha": 2})
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, network_type="lycoris", lycoris=spec,
                         max_train_steps=2)
    trainer, result = run(config, tmp_path)
    base, _ = merged(tiny_checkpoints["sd1"], result.final_file, tmp_path / "cache")
    assert_same_outputs(trainer.session.loaded.pipeline, base)


def test_sdxl_lora_uses_ldm_names_and_both_text_encoders(tiny_checkpoints, shapes_dataset, tmp_path):
    config = tiny_config(tiny_checkpoints["sdxl"], shapes_dataset, max_train_steps=2, train_text_encoder=True)
    trainer, result = run(config, tmp_path)
    with safetensors.safe_open(str(result.final_file), "pt") as handle:
        keys = list(handle.keys())
        assert handle.metadata()["ss_base_model_version"] == "sdxl_base_v1-0"
    assert any(k.startswith("lora_unet_input_blocks_") for k in keys)
    assert any(k.startswith("lora_te1_text_model_") for k in keys)
    assert any(k.startswith("lora_te2_text_model_") for k in keys)
    base, _ = merged(tiny_checkpoints["sdxl"], result.final_file, tmp_path / "cache")
    assert_same_outputs(trainer.session.loaded.pipeline, base)


def test_cancel_then_resume_equals_an_uninterrupted_run(tiny_checkpoints, shapes_dataset, tmp_path):
    config = tiny_config(tiny_checkpoints["sd1"], shapes_dataset, max_train_steps=0, epochs=3,
                         gradient_accumulation_steps=2, lr_scheduler="cosine", lr_warmup_steps=1,
                         shuffle_caption=True, caption_dropout_rate=0.3)
    _, full = run(config, tmp_path / "a")
    steps_done = []

    def stop_after_three():
        return len(steps_done) >= 3

    sink_root = tmp_path / "b"
    paths = TrainerPaths(sink_root / "out", sink_root / "run", sink_root / "cache")
    sink = EventSink(sink_root / "run" / "events.jsonl", listeners=(
        lambda e: steps_done.append(e) if e["type"] == "step" else None,))
    first = Trainer(config, paths, sink, stop_after_three).run()
    sink.close()
    assert first.status == "cancelled" and first.global_step == 3
    resumed = Trainer(dataclasses.replace(config, resume="latest"), paths,
                      EventSink(sink_root / "run" / "events.jsonl")).run()
    assert resumed.status == "done"
    assert list(first.losses) + list(resumed.losses) == list(full.losses)  # bit-identical
    with safetensors.safe_open(str(full.final_file), "pt") as a, safetensors.safe_open(
            str(resumed.final_file), "pt") as b:
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
