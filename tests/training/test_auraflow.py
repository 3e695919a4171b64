"""AuraFlow training on a tiny AuraFlow diffusers folder: the folder loads offline and is listed (training only),
the flow-matching hooks follow the sampler's conventions, the docs/FORMATS.md LoKr JSON and plain LoRA train, and the
saved files reload onto a fresh transformer (LyCORIS's `create_lycoris_from_weights`, diffusers'
`load_lora_weights`) with every trained layer and the trained output."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors
import torch

from tests.conftest import FORMATS_LOKR, tiny_config
from tests.training.test_trainer import run
from webui.core.errors import ModelLoadError, ValidationError
from webui.engine.models.loader import diffusers_folder_family, load_checkpoint
from webui.engine.models.registry import ModelRegistry
from webui.training.config import LycorisSpec
from webui.training.config_files import load_config_file
from webui.training.events import iter_events
from webui.training.families import FlowMatchHooks, shift_sigmas

ROOT = Path(__file__).resolve().parents[2]


def fresh_pipeline(folder: Path):
    from diffusers import AuraFlowPipeline

    return AuraFlowPipeline.from_pretrained(str(folder), local_files_only=True)


def transformer_inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 4, 16, 16, generator=gen), torch.randn(1, 12, 32, generator=gen),
            torch.tensor([0.63]))


@torch.no_grad()
def transformer_output(transformer, inputs) -> torch.Tensor:
    latents, context, sigma = inputs
    transformer.eval()
    return transformer(latents, encoder_hidden_states=context, timestep=sigma).sample


@torch.no_grad()
def eval_loss(pipe, dataset, latent_cache, flow_shift: float = 3.0) -> float:
    """Flow-matching loss over the dataset on fixed noise and sigmas."""
    hooks = FlowMatchHooks(pipe, flow_shift=flow_shift)
    gen = torch.Generator().manual_seed(5)
    losses = []
    for item in dataset.items:
        latents = latent_cache.encode(item).unsqueeze(0)
        cond = hooks.encode_text([item.caption], torch.device("cpu"))
        for _ in range(4):
            noise = torch.randn(latents.shape, generator=gen)
            sigmas = hooks.sample_timesteps(1, gen)
            noisy, target = hooks.noisy_and_target(latents, noise, sigmas)
            prediction = hooks.predict(pipe.transformer.eval(), noisy, sigmas, cond, item.bucket)
            losses.append(torch.nn.functional.mse_loss(prediction, target).item())
    return sum(losses) / len(losses)


# ----- the model folder --------------------------------------------------------------------------------------------


def test_tiny_auraflow_folder_loads_offline_and_generates(tiny_auraflow):
    from webui.testing.tiny_auraflow import build_tokenizer

    index = json.loads((tiny_auraflow / "model_index.json").read_text())
    assert index["_class_name"] == "AuraFlowPipeline" and index["text_encoder"][1] == "UMT5EncoderModel"
    pipe = fresh_pipeline(tiny_auraflow)
    assert pipe.tokenizer("a red disc").input_ids == build_tokenizer()("a red disc").input_ids
    assert pipe.tokenizer("a red disc").input_ids[-1] == 1  # T5-style end token
    assert pipe.vae.config.scaling_factor == pytest.approx(0.13025)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(prompt="a red disc", width=32, height=32, num_inference_steps=2, max_sequence_length=16,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)


def test_auraflow_folder_is_listed_detected_and_loads_for_generation_and_training(tiny_auraflow, tmp_path):
    models = tmp_path / "models" / "Stable-diffusion"
    shutil.copytree(tiny_auraflow, models / "tiny-auraflow")
    registry = ModelRegistry((models,), tmp_path / "models" / "VAE")
    entry = registry.find_checkpoint("tiny-auraflow")
    assert entry.kind == "diffusers" and diffusers_folder_family(entry.path) == "auraflow"
    loaded = load_checkpoint(entry.path, cache_dir=tmp_path / "cache")  # generation (tests/engine/test_flow_...)
    assert loaded.family == "auraflow" and loaded.prediction_type == "flow_matching"
    with pytest.raises(ModelLoadError, match="auraflow model, which cannot be used here"):
        load_checkpoint(entry.path, cache_dir=tmp_path / "cache", families=("sd1",))  # a caller that wants SD1


# ----- flow matching -----------------------------------------------------------------------------------------------


def test_shift_matches_the_samplers_and_moves_sigmas_towards_noise(tiny_auraflow):
    from diffusers import FlowMatchEulerDiscreteScheduler

    shifted = FlowMatchEulerDiscreteScheduler(shift=3.0).sigmas
    torch.testing.assert_close(shift_sigmas(FlowMatchEulerDiscreteScheduler(shift=1.0).sigmas, 3.0), shifted)
    pipe = fresh_pipeline(tiny_auraflow)
    plain = FlowMatchHooks(pipe, flow_shift=1.0).sample_timesteps(4000, torch.Generator().manual_seed(0))
    pushed = FlowMatchHooks(pipe, flow_shift=3.0).sample_timesteps(4000, torch.Generator().manual_seed(0))
    assert 0 < float(plain.min()) and float(plain.max()) < 1
    assert abs(float(plain.median()) - 0.5) < 0.03  # logit-normal(0, 1) is centred
    assert float(pushed.median()) == pytest.approx(0.75, abs=0.03)  # shift 3 maps 0.5 to 0.75
    with pytest.raises(ValidationError, match="positive"):
        FlowMatchHooks(pipe, flow_shift=0)


def test_noisy_latents_and_velocity_target(tiny_auraflow):
    hooks = FlowMatchHooks(fresh_pipeline(tiny_auraflow))
    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    sigmas = torch.tensor([0.0, 0.25])
    noisy, target = hooks.noisy_and_target(latents, noise, sigmas)
    torch.testing.assert_close(noisy[0], latents[0])
    torch.testing.assert_close(noisy[1], 0.75 * latents[1] + 0.25 * noise[1])
    torch.testing.assert_close(target, noise - latents)
    # one Euler step of the sampler with the exact velocity lands on the clean latents
    torch.testing.assert_close(noisy[1] - 0.25 * target[1], latents[1])


def test_text_embeddings_zero_the_padding(tiny_auraflow):
    hooks = FlowMatchHooks(fresh_pipeline(tiny_auraflow))
    with torch.no_grad():
        hidden = hooks.encode_text(["a disc"], torch.device("cpu")).hidden
    assert hidden.shape == (1, 64, 32)  # min(128, the tokenizer's 64)
    assert hidden[0, :7].abs().sum() > 0 and hidden[0, 7:].abs().sum() == 0  # 6 bytes + end token


def test_buckets_outside_the_position_grid_are_refused(tiny_auraflow, shapes_dataset, tmp_path):
    hooks = FlowMatchHooks(fresh_pipeline(tiny_auraflow))
    assert hooks.check_bucket((32, 64)) is None
    assert "position grid" in hooks.check_bucket((96, 32)) and "multiples of 4" in hooks.check_bucket((34, 32))
    config = tiny_config(tiny_auraflow, shapes_dataset, resolution=96, min_bucket_reso=96, max_bucket_reso=96)
    with pytest.raises(ValidationError, match="position grid"):
        run(config, tmp_path)


# ----- LoKr (the docs/FORMATS.md JSON) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lokr_run(tiny_auraflow, shapes_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("auraflow-lokr")
    config = tiny_config(tiny_auraflow, shapes_dataset, network_type="lycoris", max_train_steps=30,
                         learning_rate=3e-2, lycoris=LycorisSpec.from_json(FORMATS_LOKR), flow_shift=2.0)
    trainer, result = run(config, root)
    return root, trainer, result


def test_formats_lokr_json_trains_on_auraflow(lokr_run, tiny_auraflow):
    _, trainer, result = lokr_run
    session = trainer.session
    assert result.status == "done" and result.global_step == 30 and session.family == "auraflow"
    assert session.hooks.flow_shift == 2.0
    assert not session.network.notes  # both preset classes matched something
    names = [lora.lora_name for lora in session.network.networks["transformer"].loras]
    assert any(".ff." in n or "_ff_" in n for n in names) and any("_ff_context_" in n for n in names)
    assert any("_attn_to_q" in n for n in names) and any("_attn_add_k_proj" in n for n in names)
    assert all(torch.isfinite(torch.tensor(loss)) for loss in result.losses)
    changed = [name for name, value in session.network.trainable_state().items() if value.abs().sum() > 0]
    assert len(changed) == len(session.network.named_trainable())  # every tensor moved (or started) non-zero
    base = fresh_pipeline(tiny_auraflow)
    before = eval_loss(base, session.dataset, session.latents, 2.0)
    after = eval_loss(session.loaded.pipeline, session.dataset, session.latents, 2.0)
    assert after < before * 0.9, (before, after)  # measured: 1.09 -> 0.81


def test_saved_lokr_reloads_with_create_lycoris_from_weights(lokr_run, tiny_auraflow):
    from diffusers import AuraFlowTransformer2DModel
    from lycoris import create_lycoris_from_weights

    _, trainer, result = lokr_run
    with safetensors.safe_open(str(result.final_file), "pt") as handle:
        keys = list(handle.keys())
        meta = handle.metadata()
    assert all(k.startswith("lycoris_") for k in keys) and any(k.endswith(".lokr_w1") for k in keys)
    assert meta["ss_network_module"] == "lycoris.kohya" and meta["ss_base_model_version"] == "auraflow"
    assert json.loads(meta["ss_network_args"])["algo"] == "lokr" and meta["sshs_model_hash"]
    trained = trainer.session.network.networks["transformer"]
    fresh = AuraFlowTransformer2DModel.from_pretrained(str(tiny_auraflow / "transformer"))
    wrapper, _ = create_lycoris_from_weights(1.0, str(result.final_file), fresh)
    assert sorted(m.lora_name for m in wrapper.loras) == sorted(m.lora_name for m in trained.loras)
    wrapper.apply_to()
    inputs = transformer_inputs()
    expected = transformer_output(trainer.session.loaded.pipeline.transformer, inputs)
    torch.testing.assert_close(transformer_output(fresh, inputs), expected, atol=1e-6, rtol=1e-5)
    untouched = AuraFlowTransformer2DModel.from_pretrained(str(tiny_auraflow / "transformer"))
    assert not torch.allclose(transformer_output(untouched, inputs), expected, atol=1e-4)


# ----- plain LoRA --------------------------------------------------------------------------------------------------


def test_lora_file_loads_in_diffusers_with_every_layer(tiny_auraflow, shapes_dataset, tmp_path):
    config = tiny_config(tiny_auraflow, shapes_dataset, max_train_steps=4, network_dim=4, network_alpha=2.0,
                         learning_rate=1e-2, train_text_encoder=True)
    trainer, result = run(config, tmp_path)
    network = trainer.session.network
    assert not trainer.session.config.train_text_encoder  # AuraFlow trains its transformer only (noted)
    with safetensors.safe_open(str(result.final_file), "pt") as handle:
        keys = set(handle.keys())
        meta = handle.metadata()
    paths = {layer.path for layer in network.layers}
    assert keys == {f"transformer.{p}.lora_{ab}.weight" for p in paths for ab in "AB"}
    assert {"attn.to_q", "attn.to_out.0", "attn.add_q_proj", "attn.to_add_out", "ff.linear_1",
            "ff_context.out_projection"} <= {p.split(".", 2)[2] for p in paths if p.startswith("joint")}
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2"
    pipe = fresh_pipeline(tiny_auraflow)
    pipe.load_lora_weights(str(result.final_file))
    loaded = {name.removesuffix(".lora_A") for name, _ in pipe.transformer.named_modules()
              if name.endswith(".lora_A")}
    assert loaded == paths  # nothing dropped on the way (attention included)
    inputs = transformer_inputs(1)
    torch.testing.assert_close(transformer_output(pipe.transformer, inputs),
                               transformer_output(trainer.session.loaded.pipeline.transformer, inputs),
                               atol=1e-6, rtol=1e-5)


# ----- SimpleTuner config and the CLI ------------------------------------------------------------------------------


def simpletuner_config(folder: Path, tiny_auraflow: Path, dataset: Path) -> Path:
    (folder / "lycoris_config.json").write_text(json.dumps(FORMATS_LOKR))
    (folder / "multidatabackend.json").write_text(json.dumps([
        {"id": "shapes", "type": "local", "instance_data_dir": str(dataset / "1_shapes"), "caption_strategy":
         "instanceprompt", "instance_prompt": "a flat shape", "resolution": 32, "resolution_type": "pixel",
         "crop": True, "repeats": 0, "cache_dir_vae": "cache/vae/auraflow"},
        {"id": "text-embeds", "type": "local", "dataset_type": "text_embeds", "default": True,
         "cache_dir": "cache/text/auraflow"}]))
    config = folder / "config.json"
    config.write_text(json.dumps({
        "model_type": "lora", "lora_type": "lycoris", "lycoris_config": "lycoris_config.json",
        "model_family": "auraflow", "model_flavour": "pony", "pretrained_model_name_or_path": str(tiny_auraflow),
        "data_backend_config": "multidatabackend.json", "output_dir": str(folder / "out"),
        "tracker_run_name": "aura-cli", "train_batch_size": 2, "learning_rate": "4e-5", "optimizer": "adamw_bf16",
        "max_train_steps": 2, "num_train_epochs": 0, "lr_scheduler": "constant", "lr_warmup_steps": 0,
        "seed": 42, "mixed_precision": "bf16", "gradient_checkpointing": "true", "max_grad_norm": 0.01,
        "flow_schedule_shift": 2.5, "base_model_precision": "int8-quanto", "validation_resolution": "1024x1024"}))
    return config


def test_simpletuner_auraflow_config_maps_onto_the_trainer(tiny_auraflow, shapes_dataset, tmp_path):
    loaded = load_config_file(simpletuner_config(tmp_path, tiny_auraflow, shapes_dataset))
    config = loaded.config
    assert (config.model_family, config.flow_shift, config.network_type) == ("auraflow", 2.5, "lycoris")
    assert config.lycoris.apply_preset["target_module"] == ["Attention", "FeedForward"]
    assert config.optimizer == "AdamW" and config.gradient_checkpointing and config.resolution == 32
    assert "model_flavour" in loaded.ignored


def test_cli_trains_auraflow_from_a_simpletuner_config(tiny_auraflow, shapes_dataset, tmp_path):
    config = simpletuner_config(tmp_path, tiny_auraflow, shapes_dataset)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "webui.train", str(config), "--data-dir", str(tmp_path),
                           "--threads", "1"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    events = list(iter_events(tmp_path / "training" / "aura-cli" / "events.jsonl"))
    assert events[-1]["type"] == "done" and events[0]["type"] in ("note", "started")
    assert [e["family"] for e in events if e["type"] == "started"] == ["auraflow"]
    with safetensors.safe_open(str(tmp_path / "out" / "aura-cli.safetensors"), "pt") as handle:
        assert all(k.startswith("lycoris_") for k in handle.keys())


# ----- the rest of the loop: caches, samples, resume ---------------------------------------------------------------


def test_caches_samples_and_resume_work_for_auraflow(tiny_auraflow, shapes_dataset, tmp_path):
    import dataclasses

    from webui.training.events import EventSink
    from webui.training.session import TrainerPaths
    from webui.training.trainer import Trainer

    plain = tiny_config(tiny_auraflow, shapes_dataset, max_train_steps=4, network_type="lycoris",
                        lycoris=LycorisSpec.from_json(FORMATS_LOKR))
    _, reference = run(plain, tmp_path / "plain")
    cached = dataclasses.replace(plain, cache_latents=True, cache_text_embeddings=True,
                                 sample_every_n_steps=4, sample_prompt_text="a red disc --w 32 --h 32 --s 2")
    trainer, result = run(cached, tmp_path, name="cached")
    assert result.losses == reference.losses  # the caches change nothing
    assert trainer.session.latents.misses == 6
    samples = [e for e in iter_events(tmp_path / "cached" / "events.jsonl") if e["type"] == "sample"]
    assert len(samples) == 1 and Path(samples[0]["paths"][0]).is_file()
    assert (tmp_path / "out" / "tiny.preview.png").is_file()

    steps: list[dict] = []
    paths = TrainerPaths(tmp_path / "b" / "out", tmp_path / "b" / "run", tmp_path / "b" / "cache")
    sink = EventSink(paths.work_dir / "events.jsonl", listeners=(
        lambda e: steps.append(e) if e["type"] == "step" else None,))
    first = Trainer(plain, paths, sink, lambda: len(steps) >= 2).run()
    sink.close()
    assert first.status == "cancelled" and first.global_step == 2
    resumed = Trainer(dataclasses.replace(plain, resume="latest"), paths,
                      EventSink(paths.work_dir / "events.jsonl")).run()
    assert list(first.losses) + list(resumed.losses) == list(reference.losses)  # bit-identical
