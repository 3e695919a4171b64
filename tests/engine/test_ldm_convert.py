"""The diffusers -> LDM converter is exactly inverted by diffusers' own LDM -> diffusers functions.

Why: the tiny single-file fixtures are only trustworthy if diffusers reads them back into the very same tensors;
that is the loading path real A1111 checkpoints take.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from safetensors import safe_open

from webui.engine.models.ldm_convert import (
    SD2_OPEN_CLIP_PREFIX,
    SDXL_OPEN_CLIP_PREFIX,
    clip_to_ldm,
    pipeline_components_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)
from webui.testing.tiny_models import FAMILIES, build_tiny_components, write_tiny_checkpoint

FAMILY_KEYS = {
    "sd1": ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",),
    "sd2": ("cond_stage_model.model.token_embedding.weight",),
    "sdxl": (
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
        "conditioner.embedders.1.model.token_embedding.weight",
        "conditioner.embedders.1.model.text_projection",
        "model.diffusion_model.label_emb.0.0.weight",
    ),
}
COMMON_KEYS = ("model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    torch.set_num_threads(1)


@functools.cache
def _components(family: str) -> dict[str, Any]:
    return build_tiny_components(family, seed=0)


@functools.cache
def _ldm(family: str) -> dict[str, torch.Tensor]:
    return pipeline_components_to_ldm(_components(family), family)


def _flat_text_keys(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' converters emit `text_model.*`; a flattened `CLIPTextModel` (transformers >= 5.6) has no such level.
    This mirrors what `create_diffusers_clip_model_from_ldm` does before loading."""
    if hasattr(model, "text_model"):
        return dict(state)
    return {key.removeprefix("text_model."): value for key, value in state.items()}


def _assert_same(restored: Mapping[str, torch.Tensor], original: Mapping[str, torch.Tensor]) -> None:
    assert sorted(restored) == sorted(original)
    different = [key for key, value in original.items() if not torch.equal(restored[key], value)]
    assert different == []


@pytest.mark.parametrize("family", FAMILIES)
def test_family_keys_present(family: str) -> None:
    ldm = _ldm(family)
    for key in COMMON_KEYS + FAMILY_KEYS[family]:
        assert key in ldm, key
    assert all(key.startswith(("model.", "first_stage_model.", "cond_stage_model.", "conditioner.")) for key in ldm)


@pytest.mark.parametrize("family", FAMILIES)
def test_unet_round_trip(family: str) -> None:
    unet = _components(family)["unet"]
    restored = convert_ldm_unet_checkpoint(_ldm(family), unet.config)
    _assert_same(restored, unet.state_dict())


@pytest.mark.parametrize("family", FAMILIES)
def test_vae_round_trip(family: str) -> None:
    vae = _components(family)["vae"]
    ldm = _ldm(family)
    assert ldm["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # 1x1 conv, as in original files
    restored = convert_ldm_vae_checkpoint(ldm, vae.config)
    _assert_same(restored, vae.state_dict())


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_clip_round_trip(family: str) -> None:
    text_encoder = _components(family)["text_encoder"]
    restored = _flat_text_keys(text_encoder, convert_ldm_clip_checkpoint(_ldm(family)))
    _assert_same(restored, text_encoder.state_dict())


@pytest.mark.parametrize(("family", "name", "prefix"), [
    ("sd2", "text_encoder", SD2_OPEN_CLIP_PREFIX),
    ("sdxl", "text_encoder_2", SDXL_OPEN_CLIP_PREFIX),
])
def test_open_clip_round_trip(family: str, name: str, prefix: str) -> None:
    text_encoder = _components(family)[name]
    restored = convert_open_clip_checkpoint(text_encoder, _ldm(family), prefix=prefix)
    _assert_same(_flat_text_keys(text_encoder, restored), text_encoder.state_dict())


def test_sdxl_text_widths_differ() -> None:
    """diffusers tells SDXL's two encoders apart by width when loading a single file; equal widths would mix them."""
    ldm = _ldm("sdxl")
    width_0 = ldm["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"].shape[-1]
    width_1 = ldm["conditioner.embedders.1.model.positional_embedding"].shape[-1]
    assert width_0 != width_1


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown UNet"):
        unet_to_ldm({"mystery.weight": torch.zeros(1)}, {"layers_per_block": 1})
    with pytest.raises(ValueError, match="Unknown VAE"):
        vae_to_ldm({"encoder.mystery.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="Unknown CLIP"):
        clip_to_ldm({"text_projection.weight": torch.zeros(1)}, "cond_stage_model.transformer.")
    with pytest.raises(ValueError, match="Unknown model family"):
        pipeline_components_to_ldm(_components("sd1"), "sd3")


def test_write_tiny_checkpoint(tmp_path: Path) -> None:
    path = write_tiny_checkpoint(tmp_path / "tiny-inpaint.safetensors", "sd1", in_channels=9)
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        conv_in = handle.get_tensor("model.diffusion_model.input_blocks.0.0.weight")
    assert keys == set(_ldm("sd1"))
    assert conv_in.dtype == torch.float16
    assert conv_in.shape[1] == 9
