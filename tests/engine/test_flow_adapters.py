"""Adapters on the flow transformers: files from our own AuraFlow trainer and hand-built files in each Flux and
AuraFlow layout apply through `AdapterSet` (the mechanism SD uses), change the transformer's output, compute what
the file means (the trainer's own output; diffusers' conversions of kohya and XLabs files), and weight 0 / removal
restores the base weights bit for bit. A file for another family is refused with a note naming both."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import FORMATS_LOKR, tiny_config
from tests.training.test_trainer import run
from webui.engine.networks.adapter_family import adapter_family, family_from_metadata, fits_family
from webui.engine.networks.adapters import AdapterRequest, AdapterSet
from webui.testing.flow_lora_files import AURAFLOW_LAYOUTS, FLUX_LAYOUTS, write_flow_lora
from webui.training.config import LycorisSpec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    from webui.testing.tiny_flux import build_tiny_flux

    return build_tiny_flux(0, tokenizer_dir=tmp_path_factory.mktemp("flux-tok"))


@pytest.fixture(scope="module")
def auraflow():
    from webui.testing.tiny_auraflow import build_tiny_auraflow

    return build_tiny_auraflow(0)


@pytest.fixture(scope="module")
def files(tmp_path_factory, flux, auraflow) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("flow-loras")
    written = {layout: write_flow_lora(folder / f"flux-{layout}.safetensors", flux, layout, seed=i)
               for i, layout in enumerate(FLUX_LAYOUTS)}
    written |= {layout: write_flow_lora(folder / f"aura-{layout}.safetensors", auraflow, layout, seed=10 + i)
                for i, layout in enumerate(AURAFLOW_LAYOUTS)}
    return written


@torch.no_grad()
def flux_output(pipe) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    config = pipe.transformer.config
    image_ids = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(2.0), torch.arange(2.0), indexing="ij"),
                            dim=-1).reshape(-1, 3)
    return pipe.transformer(hidden_states=torch.randn(1, 4, config.in_channels, generator=gen),
                            encoder_hidden_states=torch.randn(1, 6, config.joint_attention_dim, generator=gen),
                            pooled_projections=torch.randn(1, config.pooled_projection_dim, generator=gen),
                            timestep=torch.tensor([0.6]), img_ids=image_ids, txt_ids=torch.zeros(6, 3),
                            guidance=torch.tensor([3.5])).sample


@torch.no_grad()
def auraflow_output(pipe) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return pipe.transformer(torch.randn(1, 4, 8, 8, generator=gen), encoder_hidden_states=torch.randn(
        1, 6, 32, generator=gen), timestep=torch.tensor([0.6])).sample


def state(pipe) -> dict[str, torch.Tensor]:
    parts = {"transformer": pipe.transformer, "te": pipe.text_encoder,
             "te2": getattr(pipe, "text_encoder_2", None) or torch.nn.Module()}
    return {f"{name}.{k}": v.clone() for name, module in parts.items() for k, v in module.state_dict().items()}


def check_applies_and_restores(pipe, output, path: Path, name: str) -> dict[str, torch.Tensor]:
    """Apply at weight 1: no notes, the output changes; weight 0 and removal: every tensor bit for bit. Returns
    the merged weights (for the math checks)."""
    adapters, base, plain = AdapterSet(pipe), state(pipe), output(pipe)
    assert adapters.apply([AdapterRequest(name, path, name)]) == []
    merged = state(pipe)
    assert not torch.allclose(output(pipe), plain, atol=1e-6)
    assert adapters.apply([AdapterRequest(name, path, name, 0.0, 0.0)]) == []
    assert all(torch.equal(base[k], v) for k, v in state(pipe).items())
    adapters.apply([AdapterRequest(name, path, name)])
    adapters.restore()
    assert all(torch.equal(base[k], v) for k, v in state(pipe).items())
    assert torch.equal(output(pipe), plain)
    return {k: merged[k] - base[k] for k in base if not torch.equal(merged[k], base[k])}


@pytest.mark.parametrize("layout", FLUX_LAYOUTS)
def test_each_flux_layout_applies_and_restores_exactly(flux, files, layout):
    deltas = check_applies_and_restores(flux, flux_output, files[layout], layout)
    if layout == "kohya":  # one fused `img_attn.qkv` pair reaches all three projections, CLIP-L and T5 too
        layers = ("transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_v",
                  "single_transformer_blocks.0.proj_mlp", "norm_out.linear")
        assert {f"transformer.{layer}.weight" for layer in layers} <= set(deltas)
        assert any(k.startswith("te.") for k in deltas)
        assert {"te2.encoder.block.0.layer.0.SelfAttention.q.weight",
                "te2.encoder.block.1.layer.1.DenseReluDense.wo.weight"} <= set(deltas)


def _expected_from_diffusers(converted: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-layer deltas (B @ A) of a diffusers-layout state dict (alphas already folded in by the converter)."""
    out = {}
    for key, down in converted.items():
        if key.startswith("transformer.") and key.endswith(".lora_A.weight"):
            up = converted[key.replace(".lora_A.", ".lora_B.")]
            out[key.removesuffix(".lora_A.weight") + ".weight"] = up.float() @ down.float()
    return out


LINEAR1 = "lora_unet_single_blocks_0_linear1"


@pytest.mark.parametrize("layout", ["kohya", "xlabs"])
def test_fused_layouts_mean_what_diffusers_reads(flux, files, layout):
    """Our split of BFL's fused layers (q/k/v, the final (shift, scale) swap) gives the deltas diffusers' own
    converters give for the same file. diffusers splits a single block's `linear1` at the real model's width
    (3072), so for the tiny model that layer is checked by hand: rows q, k, v (the attention width each), MLP."""
    from diffusers.loaders.lora_conversion_utils import (
        _convert_kohya_flux_lora_to_diffusers,
        _convert_xlabs_flux_lora_to_diffusers,
    )

    convert = _convert_kohya_flux_lora_to_diffusers if layout == "kohya" else _convert_xlabs_flux_lora_to_diffusers
    tensors = load_file(str(files[layout]))
    converted = convert({k: v for k, v in tensors.items() if LINEAR1 not in k and not k.startswith("lora_te")})
    expected = _expected_from_diffusers({k if k.startswith(("transformer.", "text_encoder.")) else f"transformer.{k}": v
                                         for k, v in converted.items()})
    if layout == "kohya":
        # diffusers drops the final layer's alpha unused; kohya (and A1111, Forge, ComfyUI) scale every layer by
        # alpha / rank, as we do
        final = "lora_unet_final_layer_adaLN_modulation_1"
        expected["transformer.norm_out.linear.weight"] *= tensors[f"{final}.alpha"] / tensors[
            f"{final}.lora_down.weight"].shape[0]
        rank = tensors[f"{LINEAR1}.lora_down.weight"].shape[0]
        fused = tensors[f"{LINEAR1}.lora_up.weight"] @ tensors[f"{LINEAR1}.lora_down.weight"] * (
            tensors[f"{LINEAR1}.alpha"] / rank)
        width = flux.transformer.inner_dim
        parts = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
        for part, rows in zip(parts, fused.split([width, width, width, fused.shape[0] - 3 * width]), strict=True):
            expected[f"transformer.single_transformer_blocks.0.{part}.weight"] = rows
    deltas = check_applies_and_restores(flux, flux_output, files[layout], layout)
    got = {k: v for k, v in deltas.items() if k.startswith("transformer.")}
    assert set(got) == set(expected)
    for key, delta in expected.items():
        torch.testing.assert_close(got[key], delta, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("layout", AURAFLOW_LAYOUTS)
def test_each_auraflow_layout_applies_and_restores_exactly(auraflow, files, layout):
    deltas = check_applies_and_restores(auraflow, auraflow_output, files[layout], layout)
    assert len(deltas) == 5


def test_every_file_knows_its_family(files, tiny_checkpoints, tmp_path):
    from webui.engine.models.loader import load_checkpoint
    from webui.testing.lora_files import write_adapter

    for layout, path in files.items():
        expected = "flux" if layout in FLUX_LAYOUTS else "auraflow"
        assert adapter_family(load_file(str(path)), {}) == expected, layout
    sd = load_checkpoint(tiny_checkpoints["sdxl"], cache_dir=tmp_path).pipeline
    for fmt in ("lora", "lokr", "peft", "simpletuner"):
        keys = load_file(str(write_adapter(tmp_path / f"{fmt}.safetensors", sd, fmt, ldm_names=True)))
        assert adapter_family(keys, {}) == "sd", fmt
    assert family_from_metadata({"ss_base_model_version": "flux1"}) == "flux"
    assert family_from_metadata({"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}) == "sd"
    assert adapter_family({"unknown.weight": torch.zeros(1)}, {}) is None
    assert fits_family("sd", "sdxl") and fits_family(None, "flux") and not fits_family("sd", "auraflow")


def test_a_file_for_another_family_is_a_note_not_a_crash(flux, auraflow, files):
    base = state(flux)
    notes = AdapterSet(flux).apply([AdapterRequest("aura", files["peft"], "aura")])
    assert notes == ["LoRA 'aura' skipped: 'aura-peft.safetensors' is made for AuraFlow and the loaded model is "
                     "Flux: pick a LoRA made for this model."]
    assert all(torch.equal(base[k], v) for k, v in state(flux).items())
    notes = AdapterSet(auraflow).apply([AdapterRequest("k", files["kohya"], "k")])
    assert len(notes) == 1 and "made for Flux" in notes[0] and "model is AuraFlow" in notes[0]


# ----- files our own Train tab writes for AuraFlow ------------------------------------------------------------------


TRAINED = {
    "lora": {},
    "lokr": {"network_type": "lycoris", "lycoris": LycorisSpec.from_json(FORMATS_LOKR)},
    "loha": {"network_type": "lycoris", "lycoris": LycorisSpec.from_json(
        {"algo": "loha", "multiplier": 1.0, "linear_dim": 4, "linear_alpha": 2})},
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TRAINED))
def test_files_our_auraflow_trainer_writes_apply_exactly(tiny_auraflow, shapes_dataset, tmp_path, kind):
    """Two training steps, then the saved file on a fresh copy of the base model gives the trainer's own output
    (its live adapters), and removal restores the base."""
    from diffusers import AuraFlowPipeline

    config = tiny_config(tiny_auraflow, shapes_dataset, max_train_steps=2, learning_rate=5e-2, **TRAINED[kind])
    trainer, result = run(config, tmp_path)
    assert result.status == "done"
    keys = load_file(str(result.final_file))
    prefix = "transformer." if kind == "lora" else "lycoris_"
    assert all(k.startswith(prefix) for k in keys) and adapter_family(keys, {}) == "auraflow"
    fresh = AuraFlowPipeline.from_pretrained(str(tiny_auraflow), local_files_only=True)
    check_applies_and_restores(fresh, auraflow_output, result.final_file, kind)
    AdapterSet(fresh).apply([AdapterRequest(kind, result.final_file, kind)])
    torch.testing.assert_close(auraflow_output(fresh), auraflow_output(trainer.session.loaded.pipeline),
                               atol=1e-5, rtol=1e-4)
