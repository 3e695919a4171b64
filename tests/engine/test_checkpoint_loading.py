"""Checkpoint I/O: tokenizer, family detection, shape inference, single-file loading, and refusing bad files.

Everything runs offline on tiny random models written in the real LDM single-file layout; the "real size" tests
build published-size models on the meta device, so no weights are allocated.
"""
from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from webui.core.errors import ModelLoadError, UnsafeFileError
from webui.engine.models import loader as checkpoint_loader
from webui.engine.models.architecture import infer_architecture
from webui.engine.models.clip_tokenizer import load_clip_tokenizer, write_tokenizer_files
from webui.engine.models.detection import detect_kind_from_keys
from webui.engine.models.ldm_convert import VAE_PREFIX, pipeline_components_to_ldm, vae_to_ldm
from webui.engine.models.loader import (
    CONFIGS_DIR,
    LoadedCheckpoint,
    is_v_prediction_unet,
    load_checkpoint,
    load_vae,
)
from webui.engine.models.safetensors_header import read_safetensors_header
from webui.engine.models.state_dict import load_state_dict, read_shapes
from webui.engine.models.yaml_hints import read_yaml_hints
from webui.testing.tiny_models import TEXT_LAYERS, build_tiny_components, write_tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

FAMILIES = ("sd1", "sd2", "sdxl")
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("Stable-diffusion")
    return {family: write_tiny_checkpoint(folder / f"tiny-{family}.safetensors", family) for family in FAMILIES}


@pytest.fixture(scope="session")
def loaded(tiny_files: dict[str, Path], cache_dir: Path) -> dict[str, LoadedCheckpoint]:
    return {family: load_checkpoint(path, cache_dir=cache_dir) for family, path in tiny_files.items()}


def _write_state(path: Path, state: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _fp16_round_trip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tiny files are written in float16 and loaded in float32."""
    return {k: v.detach().half().float() for k, v in state.items()}


def _assert_same_weights(loaded: torch.nn.Module, expected: dict[str, torch.Tensor], *, subset: bool = False) -> None:
    got = loaded.state_dict()
    if not subset:
        assert set(got) == set(expected)
    for key, tensor in got.items():
        assert torch.equal(tensor.float(), expected[key]), key


# --- tokenizer --------------------------------------------------------------------------------------------------


def test_tokenizer_matches_clip_ids(cache_dir: Path) -> None:
    tokenizer = load_clip_tokenizer(cache_dir / "tok-eot")
    assert tokenizer("a photo of a cat").input_ids == CAT_IDS
    assert tokenizer.model_max_length == 77
    padded = tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert padded[7:] == [49407] * 70


def test_sdxl_second_tokenizer_pads_with_exclamation_mark(loaded: dict[str, LoadedCheckpoint]) -> None:
    pipe = loaded["sdxl"].pipeline
    ids_2 = pipe.tokenizer_2("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert pipe.tokenizer_2.pad_token == "!" and pipe.tokenizer_2.pad_token_id == 0
    assert ids_2[:7] == CAT_IDS and ids_2[7:] == [0] * 70
    assert pipe.tokenizer.pad_token_id == 49407
    assert loaded["sd2"].pipeline.tokenizer.pad_token_id == 0  # OpenCLIP pads with "!" in SD2 too


def test_tokenizer_files_are_written_once(tmp_path: Path) -> None:
    folder = write_tokenizer_files(tmp_path / "tok")
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    write_tokenizer_files(tmp_path / "tok")
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert sorted(stamps) == ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]


# --- single-file loading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_checkpoint_round_trip(family: str, loaded: dict[str, LoadedCheckpoint]) -> None:
    result = loaded[family]
    expected = build_tiny_components(family)
    assert result.family == family and result.prediction_type == "epsilon" and not result.is_inpaint
    _assert_same_weights(result.pipeline.unet, _fp16_round_trip(expected["unet"].state_dict()))
    _assert_same_weights(result.pipeline.vae, _fp16_round_trip(expected["vae"].state_dict()))
    for name in ("text_encoder", "text_encoder_2"):
        if name not in expected:
            continue
        # SD2 conditions on OpenCLIP's penultimate layer, so (as for real 24-block files -> 23 layers) the last
        # block in the file is not part of the loaded text encoder.
        is_sd2 = family == "sd2"
        loaded_te = getattr(result.pipeline, name)
        assert loaded_te.config.num_hidden_layers == TEXT_LAYERS - (1 if is_sd2 else 0)
        _assert_same_weights(loaded_te, _fp16_round_trip(expected[name].state_dict()), subset=is_sd2)


@pytest.mark.parametrize("family", FAMILIES)
def test_two_step_generation(family: str, loaded: dict[str, LoadedCheckpoint]) -> None:
    generator = torch.Generator().manual_seed(0)
    images = loaded[family].pipeline(
        "a photo of a cat", num_inference_steps=2, height=64, width=64, output_type="np", generator=generator
    ).images
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()


def test_derived_config_is_cached_by_content(tiny_files: dict[str, Path], cache_dir: Path,
                                             loaded: dict[str, LoadedCheckpoint]) -> None:
    again = load_checkpoint(tiny_files["sd1"], cache_dir=cache_dir)
    assert again.config_dir == loaded["sd1"].config_dir
    unet_config = json.loads((again.config_dir / "unet" / "config.json").read_text())
    assert unet_config["block_out_channels"] == [32, 64] and unet_config["cross_attention_dim"] == 32
    assert (again.config_dir / "tokenizer" / "vocab.json").is_file()
    assert not any(p.name.startswith(".staging") for p in (cache_dir / "configs").iterdir())


def test_inpainting_checkpoint_uses_inpaint_pipeline(tmp_path: Path, cache_dir: Path) -> None:
    path = write_tiny_checkpoint(tmp_path / "inpaint.safetensors", "sd1", in_channels=9)
    result = load_checkpoint(path, cache_dir=cache_dir)
    assert result.is_inpaint and type(result.pipeline).__name__ == "StableDiffusionInpaintPipeline"
    image = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    out = result.pipeline("cat", image=image, mask_image=mask, num_inference_steps=2, height=64, width=64,
                          output_type="np").images
    assert out.shape == (1, 64, 64, 3)


def test_yaml_beside_checkpoint_sets_v_prediction(tiny_files: dict[str, Path], tmp_path: Path,
                                                  cache_dir: Path) -> None:
    path = tmp_path / "v-model.safetensors"
    path.write_bytes(tiny_files["sd2"].read_bytes())
    path.with_suffix(".yaml").write_text(
        "model:\n  params:\n    parameterization: \"v\"\n    unet_config:\n      params:\n"
        "        num_head_channels: 64\n        use_linear_in_transformer: true\n"
    )
    result = load_checkpoint(path, cache_dir=cache_dir)
    assert result.prediction_type == "v_prediction"
    assert result.pipeline.scheduler.config.prediction_type == "v_prediction"


def test_yaml_hints_parse_sgm_v_scaling(tmp_path: Path) -> None:
    ckpt = tmp_path / "xl.safetensors"
    ckpt.with_suffix(".yaml").write_text(
        "model:\n  params:\n    scale_factor: 0.13025\n    denoiser_config:\n      params:\n"
        "        scaling_config:\n          target: sgm.modules.diffusionmodules.denoiser_scaling.VScaling\n"
    )
    hints = read_yaml_hints(ckpt)
    assert hints.prediction_type == "v_prediction" and hints.scale_factor == pytest.approx(0.13025)


class _FakeUNet(torch.nn.Module):
    """Stands in for a UNet whose prediction at t=999 is `offset` away from its input."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = types.SimpleNamespace(in_channels=4, cross_attention_dim=8)

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> types.SimpleNamespace:
        assert int(timestep) == 999 and encoder_hidden_states.shape == (1, 2, 8)
        return types.SimpleNamespace(sample=sample + self.offset)


def test_v_prediction_test_pass() -> None:
    assert is_v_prediction_unet(_FakeUNet(-1.5))
    assert not is_v_prediction_unet(_FakeUNet(0.05))


def test_sd2_without_yaml_switches_to_v_when_the_test_pass_says_so(
    tiny_files: dict[str, Path], cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_loader, "is_v_prediction_unet", lambda unet: True)
    result = load_checkpoint(tiny_files["sd2"], cache_dir=cache_dir)
    assert result.prediction_type == "v_prediction"
    assert result.pipeline.scheduler.config.prediction_type == "v_prediction"
    assert result.pipeline.unet.config.upcast_attention is True


def test_diffusers_folder_loads(tmp_path: Path, cache_dir: Path) -> None:
    from diffusers import StableDiffusionPipeline

    components = build_tiny_components("sd1")
    pipe = StableDiffusionPipeline(
        **components, tokenizer=load_clip_tokenizer(cache_dir / "tok-eot"), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(tmp_path / "tiny-diffusers")
    result = load_checkpoint(tmp_path / "tiny-diffusers", cache_dir=cache_dir)
    assert result.family == "sd1" and not result.is_inpaint
    _assert_same_weights(result.pipeline.unet, {k: v.float() for k, v in components["unet"].state_dict().items()})


def test_ckpt_with_lightning_callbacks_loads(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old SD 1.x .ckpt files pickle Lightning's ModelCheckpoint and numpy scalars beside `state_dict`."""
    names = ("pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint")
    fake = {name: types.ModuleType(name) for name in names}
    callback_cls = type("ModelCheckpoint", (), {"__module__": names[-1]})
    fake[names[-1]].ModelCheckpoint = callback_cls
    state = {k: v.float() for k, v in load_state_dict(write_tiny_checkpoint(tmp_path / "t.safetensors", "sd1")).items()}
    path = tmp_path / "lightning.ckpt"
    with monkeypatch.context() as patch:
        for name, module in fake.items():
            patch.setitem(sys.modules, name, module)
        torch.save({"global_step": np.int64(470000), "callbacks": {callback_cls: {"best": np.float64(0.1)}},
                    "state_dict": state}, path)
    assert set(load_state_dict(path)) == set(state)
    result = load_checkpoint(path, cache_dir=cache_dir)
    assert result.family == "sd1"


# --- standalone VAE ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefixed", [True, False])
def test_standalone_vae_loads(prefixed: bool, tmp_path: Path, cache_dir: Path) -> None:
    vae = build_tiny_components("sdxl")["vae"]
    state = vae_to_ldm(vae.state_dict())
    if not prefixed:
        state = {k.removeprefix(VAE_PREFIX): v for k, v in state.items()}
    path = _write_state(tmp_path / "my.vae.safetensors", state)
    loaded_vae = load_vae(path, family="sdxl", cache_dir=cache_dir)
    _assert_same_weights(loaded_vae, {k: v.float() for k, v in vae.state_dict().items()})
    assert loaded_vae.config.scaling_factor == pytest.approx(0.13025)


def test_pt_vae_with_state_dict_nesting(tmp_path: Path, cache_dir: Path) -> None:
    vae = build_tiny_components("sd1")["vae"]
    state = {k.removeprefix(VAE_PREFIX): v for k, v in vae_to_ldm(vae.state_dict()).items()}
    torch.save({"state_dict": state}, tmp_path / "vae-ft-mse.pt")
    loaded_vae = load_vae(tmp_path / "vae-ft-mse.pt", family="sd1", cache_dir=cache_dir)
    _assert_same_weights(loaded_vae, {k: v.float() for k, v in vae.state_dict().items()})


def test_checkpoint_is_not_a_vae(tiny_files: dict[str, Path], cache_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="tiny-sd1.safetensors.*not a VAE"):
        load_vae(tiny_files["sd1"], family="sd1", cache_dir=cache_dir)


# --- bad files --------------------------------------------------------------------------------------------------


def test_truncated_safetensors(tiny_files: dict[str, Path], tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "half.safetensors"
    data = tiny_files["sd1"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"half\.safetensors.*corrupt or truncated"):
        load_checkpoint(path, cache_dir=cache_dir)


def test_random_bytes_safetensors(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "noise.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match=r"noise\.safetensors.*corrupt or truncated"):
        load_checkpoint(path, cache_dir=cache_dir)


def test_lora_in_checkpoint_folder(tmp_path: Path, cache_dir: Path) -> None:
    path = _write_state(tmp_path / "style.safetensors", {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(4, 32),
    })
    with pytest.raises(ModelLoadError, match=r"style\.safetensors.*LoRA.*models/Lora"):
        load_checkpoint(path, cache_dir=cache_dir)


def test_vae_in_checkpoint_folder(tmp_path: Path, cache_dir: Path) -> None:
    state = vae_to_ldm(build_tiny_components("sd1")["vae"].state_dict())
    path = _write_state(tmp_path / "vae-only.safetensors", state)
    with pytest.raises(ModelLoadError, match=r"vae-only\.safetensors.*VAE.*models/VAE"):
        load_checkpoint(path, cache_dir=cache_dir)


def test_unknown_file(tmp_path: Path, cache_dir: Path) -> None:
    path = _write_state(tmp_path / "mystery.safetensors", {"foo.weight": torch.zeros(2)})
    with pytest.raises(ModelLoadError, match=r"mystery\.safetensors.*not a Stable Diffusion checkpoint"):
        load_checkpoint(path, cache_dir=cache_dir)


@pytest.mark.parametrize("missing", ["model.diffusion_model.out.2.weight",  # read by shape inference
                                     "model.diffusion_model.middle_block.0.in_layers.0.weight",  # only by diffusers
                                     "cond_stage_model.transformer.text_model.final_layer_norm.weight"])
def test_checkpoint_missing_a_tensor(missing: str, tiny_files: dict[str, Path], tmp_path: Path,
                                     cache_dir: Path) -> None:
    state = load_state_dict(tiny_files["sd1"])
    del state[missing]
    path = _write_state(tmp_path / "incomplete.safetensors", state)
    with pytest.raises(ModelLoadError, match=r"incomplete\.safetensors"):
        load_checkpoint(path, cache_dir=cache_dir)


class _Payload:
    """A pickle that would create `marker` when unpickled by an unsafe loader."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


@pytest.fixture()
def malicious_ckpt(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(1)}, "payload": _Payload(marker)}, path)
    yield path, marker


def test_malicious_pickle_is_refused_and_not_run(malicious_ckpt: tuple[Path, Path], cache_dir: Path) -> None:
    path, marker = malicious_ckpt
    with pytest.raises(UnsafeFileError, match=r"evil\.ckpt.*refused.*run code.*\.safetensors"):
        load_checkpoint(path, cache_dir=cache_dir)
    with pytest.raises(UnsafeFileError):
        load_state_dict(path)
    assert not marker.exists()
    # The payload is live: an unsafe load runs it (so the assertion above means something).
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_random_bytes_ckpt_is_corrupt_not_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "noise.ckpt"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(ModelLoadError, match="corrupt") as info:
        load_state_dict(path)
    assert not isinstance(info.value, UnsafeFileError)


# --- header reading ---------------------------------------------------------------------------------------------


def test_header_is_read_without_loading_tensors(tiny_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tensors must not be loaded")

    monkeypatch.setattr("safetensors.torch.load_file", refuse)
    monkeypatch.setattr("safetensors.safe_open", refuse)
    monkeypatch.setattr("torch.load", refuse)
    metadata, tensors = read_safetensors_header(tiny_files["sdxl"])
    assert metadata == {"format": "pt"}
    dtype, shape = tensors["model.diffusion_model.input_blocks.0.0.weight"]
    assert dtype == "F16" and shape == (32, 4, 3, 3)
    assert read_shapes(tiny_files["sdxl"])["model.diffusion_model.out.2.weight"] == (4, 32, 3, 3)


@pytest.mark.parametrize("header", [b"{not json", b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 999]}}',
                                    b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}'])
def test_bad_headers_are_rejected(header: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(ModelLoadError, match=r"bad\.safetensors.*corrupt or truncated"):
        read_safetensors_header(path)


# --- detection table --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "kind", "family"), [
    (["cond_stage_model.transformer.text_model.x", "model.diffusion_model.y"], "checkpoint", "sd1"),
    (["cond_stage_model.model.x", "model.diffusion_model.y"], "checkpoint", "sd2"),
    (["conditioner.embedders.0.transformer.x", "conditioner.embedders.1.model.x", "model.diffusion_model.y"],
     "checkpoint", "sdxl"),
    (["conditioner.embedders.0.model.x", "model.diffusion_model.y"], "checkpoint", "sdxl_refiner"),
    (["lora_unet_a.lora_down.weight", "lora_unet_a.alpha"], "lora", None),
    (["lora_te1_a.lora_down.weight"], "lora", None),
    (["string_to_param", "string_to_token", "name", "step"], "embedding", None),
    (["emb_params"], "embedding", None),
    (["clip_l", "clip_g"], "embedding", None),
    (["encoder.conv_in.weight", "decoder.conv_in.weight", "quant_conv.weight"], "vae", None),
    (["first_stage_model.encoder.conv_in.weight"], "vae", None),
    (["control_model.time_embed.0.weight"], "controlnet", None),
    (["foo"], "unknown", None),
    ([], "unknown", None),
])
def test_detect_kind_from_keys(keys: list[str], kind: str, family: str | None) -> None:
    detected = detect_kind_from_keys(keys)
    assert (detected.kind, detected.family) == (kind, family)


# --- real-size architectures ------------------------------------------------------------------------------------


def _meta_ldm_shapes(config_name: str, family: str) -> dict[str, tuple[int, ...]]:
    """LDM key shapes of a published-size model, built on the meta device from our shipped configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIGS_DIR / config_name
    with torch.device("meta"):
        components = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
        }
        if (folder / "text_encoder_2").is_dir():
            config = CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            components["text_encoder_2"] = CLIPTextModelWithProjection(config)
    shapes = {k: tuple(v.shape) for k, v in pipeline_components_to_ldm(components, family).items()}
    if family == "sd2":  # real files hold OpenCLIP's 24th block, which SD2 does not use
        last = "cond_stage_model.model.transformer.resblocks.22."
        shapes.update({k.replace(".22.", ".23."): v for k, v in shapes.items() if k.startswith(last)})
    return shapes


def _class_default(component: str, field: str) -> object:
    import inspect

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    cls = {"unet": UNet2DConditionModel, "vae": AutoencoderKL}.get(component, CLIPTextConfig)
    return inspect.signature(cls.__init__).parameters[field].default


def _normalise(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize(("config_name", "family"), [("sd15", "sd1"), ("sdxl_base", "sdxl"), ("sd21_v", "sd2")])
def test_inferred_real_architecture_equals_published(config_name: str, family: str) -> None:
    shapes = _meta_ldm_shapes(config_name, family)
    assert detect_kind_from_keys(shapes).family == family
    inferred = infer_architecture(shapes, family)
    assert set(inferred) >= {"unet", "vae", "text_encoder"}
    for component, fields in inferred.items():
        published = json.loads((CONFIGS_DIR / config_name / component / "config.json").read_text())
        for field, value in fields.items():
            expected = published[field] if field in published else _class_default(component, field)
            assert _normalise(value) == _normalise(expected), (component, field)


def test_sdxl_addition_time_embed_dim_recovered() -> None:
    unet = infer_architecture(_meta_ldm_shapes("sdxl_base", "sdxl"), "sdxl")["unet"]
    assert unet["projection_class_embeddings_input_dim"] == 2816 and unet["addition_time_embed_dim"] == 256
    assert unet["transformer_layers_per_block"] == [1, 2, 10] and unet["attention_head_dim"] == [5, 10, 20]


def test_unknown_family_is_a_load_error() -> None:
    with pytest.raises(ModelLoadError):
        infer_architecture({}, "sd9")
