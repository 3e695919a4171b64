"""Load A1111-style model files (single-file checkpoints, standalone VAEs, diffusers folders) fully offline.

Why: diffusers' `from_single_file` needs a diffusers config folder for the model and would fetch one from the hub
when not given. We never may, and a fine-tune can differ from the published sizes, so we build that folder
ourselves: the family's shipped config (`configs/<name>/`) with the sizes read from the file's own tensor shapes,
plus tokenizer files generated from open-clip-torch's vocabulary. The folder is cached under `cache_dir`, keyed
by a hash of its content, so equal architectures share one folder and a changed one never reuses a stale one.

Pickled files (`.ckpt`, `.pt`, ...) are only ever read with `torch.load(weights_only=True)`: a pickle that needs
to run code is refused with `UnsafeFileError`, never executed.
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import safetensors
import safetensors.torch
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.loaders.single_file_utils import SingleFileComponentError

from webui.core.errors import ModelLoadError
from webui.engine.families.loading import FlowParts, load_flux_file, stored_in_fp8
from webui.engine.models.architecture import infer_architecture, infer_vae_config
from webui.engine.models.clip_tokenizer import EOS_TOKEN
from webui.engine.models.derived_config import write_derived_config
from webui.engine.models.detection import (
    AURAFLOW,
    CHECKPOINT,
    FLUX,
    GENERATION_FAMILIES,
    SD1,
    SD2,
    SDXL,
    VAE,
    VAE_PREFIX,
    DetectedKind,
    detect_family_from_diffusers_config,
    detect_kind_from_keys,
)
from webui.engine.models.state_dict import PICKLE_SUFFIXES, harmless_pickle_globals, read_shapes
from webui.engine.models.yaml_hints import EPSILON, V_PREDICTION, YamlHints, apply_yaml_hints, read_yaml_hints

logger = logging.getLogger(__name__)

CONFIGS_DIR = Path(__file__).parent / "configs"

# Errors diffusers/transformers/torch raise on a file they cannot turn into a model.
_BUILD_ERRORS = (ValueError, KeyError, RuntimeError, OSError, TypeError, AttributeError, IndexError,
                 SingleFileComponentError, safetensors.SafetensorError)


@dataclass(frozen=True)
class FamilySpec:
    """How to build one checkpoint family: shipped config dirs, pipeline classes, tokenizer folders.

    `tokenizers` lists (folder, pad token): OpenCLIP-based encoders were trained padding with "!" (id 0), CLIP-L
    with the end token; the padded positions change the embeddings, so this must match the original.
    `test_v_prediction`: SD2 files come as epsilon (512 base) and v-prediction (768); A1111 tells them apart with
    a test forward pass when no yaml says which.
    """

    config_dir: str
    pipeline: str
    inpaint_pipeline: str
    tokenizers: tuple[tuple[str, str], ...]
    v_config_dir: str | None = None
    inpaint_config_dir: str | None = None
    test_v_prediction: bool = False


FAMILY_SPECS: dict[str, FamilySpec] = {
    SD1: FamilySpec("sd15", "StableDiffusionPipeline", "StableDiffusionInpaintPipeline", (("tokenizer", EOS_TOKEN),),
                    inpaint_config_dir="sd15_inpaint"),
    SD2: FamilySpec("sd21_base", "StableDiffusionPipeline", "StableDiffusionInpaintPipeline", (("tokenizer", "!"),),
                    v_config_dir="sd21_v", test_v_prediction=True),
    SDXL: FamilySpec("sdxl_base", "StableDiffusionXLPipeline", "StableDiffusionXLInpaintPipeline",
                     (("tokenizer", EOS_TOKEN), ("tokenizer_2", "!"))),
}

# What to tell a user who put a non-checkpoint file in the checkpoint folder.
_WRONG_KIND_ADVICE = {
    "lora": "a LoRA/LyCORIS network, not a checkpoint; put it in models/Lora and use <lora:name:1> in the prompt",
    "vae": "a standalone VAE, not a checkpoint; put it in models/VAE and select it as the VAE",
    "embedding": "a textual-inversion embedding, not a checkpoint; put it in the embeddings folder",
    "controlnet": "a ControlNet model, not a checkpoint; put it in models/ControlNet",
    "unknown": "not a Stable Diffusion checkpoint (no known SD1/SD2/SDXL key layout)",
}

# Flow-matching families that load from a single file (the engine/families/ loaders).
FLOW_FILE_LOADERS = {FLUX: load_flux_file}

INPAINT_IN_CHANNELS = 9
TXT2IMG_IN_CHANNELS = 4
FLOW_MATCHING = "flow_matching"
# Why a family a caller did not ask for is refused, where there is more to say than the default message (every
# listed family generates now; the table stays for a family that is listed before it can generate).
_FAMILY_REFUSALS: dict[str, str] = {}


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A ready pipeline and the facts about it the rest of the engine needs."""

    pipeline: DiffusionPipeline
    family: str
    prediction_type: str
    is_inpaint: bool
    path: Path
    config_dir: Path | None = None


# ------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------------------------


def _detect_checkpoint(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> DetectedKind:
    detected = detect_kind_from_keys(shapes)
    if detected.kind != CHECKPOINT:
        advice = _WRONG_KIND_ADVICE.get(detected.kind, _WRONG_KIND_ADVICE["unknown"])
        raise ModelLoadError(f"'{path.name}' is {advice}.")
    if detected.family not in FAMILY_SPECS:
        what = detected.notes or detected.family
        raise ModelLoadError(f"'{path.name}' is a checkpoint of a kind we cannot load yet ({what}).")
    return detected


@contextlib.contextmanager
def _naming_file(path: Path) -> Iterator[None]:
    """Shape inference does not know the file; prefix its errors with the file name for the user."""
    try:
        yield
    except ModelLoadError as err:
        if path.name in str(err):
            raise
        raise type(err)(f"'{path.name}': {err}") from err


def _choose_config_dir(spec: FamilySpec, is_inpaint: bool, prediction_type: str | None) -> Path:
    if is_inpaint and spec.inpaint_config_dir:
        return CONFIGS_DIR / spec.inpaint_config_dir
    if prediction_type == V_PREDICTION and spec.v_config_dir:
        return CONFIGS_DIR / spec.v_config_dir
    return CONFIGS_DIR / spec.config_dir


def _pipeline_class(spec: FamilySpec, is_inpaint: bool) -> type[DiffusionPipeline]:
    return getattr(diffusers, spec.inpaint_pipeline if is_inpaint else spec.pipeline)


def _checkpoint_overrides(
    path: Path, shapes: Mapping[str, tuple[int, ...]], family: str, hints: YamlHints
) -> dict[str, dict[str, Any]]:
    with _naming_file(path):
        overrides: dict[str, dict[str, Any]] = {k: dict(v) for k, v in infer_architecture(shapes, family).items()}
    if "vae" not in overrides:
        raise ModelLoadError(f"'{path.name}' has no VAE weights (first_stage_model.*); only full checkpoints load.")
    apply_yaml_hints(overrides, hints)
    in_channels = overrides["unet"]["in_channels"]
    if in_channels not in (TXT2IMG_IN_CHANNELS, INPAINT_IN_CHANNELS):
        raise ModelLoadError(
            f"'{path.name}' has a UNet with {in_channels} input channels; only normal (4) and inpainting (9) models "
            "are supported."
        )
    return overrides


# Substrings of diffusers/torch errors -> what they mean for the user.
_FRIENDLY_BUILD_ERRORS = (
    ("meta tensor", "some weights are missing; the file is incomplete"),
    ("appear to be missing in the checkpoint", "a whole component is missing from the file"),
    ("size mismatch", "tensor shapes do not match the detected architecture"),
)


def _describe_build_error(err: BaseException) -> str:
    text = str(err)
    return next((friendly for marker, friendly in _FRIENDLY_BUILD_ERRORS if marker in text), text)


def _build_pipeline(
    path: Path, pipeline_cls: type[DiffusionPipeline], config_dir: Path, dtype: torch.dtype
) -> DiffusionPipeline:
    """diffusers' single-file loader, pointed at our folder; any failure becomes a `ModelLoadError`."""
    guard = harmless_pickle_globals() if path.suffix.lower() in PICKLE_SUFFIXES else contextlib.nullcontext()
    try:
        with guard:
            pipeline = pipeline_cls.from_single_file(
                str(path), config=str(config_dir), local_files_only=True, torch_dtype=dtype
            )
    except _BUILD_ERRORS as err:
        raise ModelLoadError(f"Could not load checkpoint '{path.name}': {_describe_build_error(err)}") from err
    _check_no_missing_weights(path, pipeline)
    return pipeline


def _check_no_missing_weights(path: Path, pipeline: DiffusionPipeline) -> None:
    """diffusers leaves parameters it found no tensor for on the meta device; that is an incomplete file."""
    for name, component in pipeline.components.items():
        if isinstance(component, torch.nn.Module) and any(p.is_meta for p in component.parameters()):
            raise ModelLoadError(f"Checkpoint '{path.name}' is missing weights for its {name}; the file is incomplete.")


@torch.no_grad()
def is_v_prediction_unet(unet: torch.nn.Module) -> bool:
    """A1111's SD2 test: at t=999 on a constant input, an epsilon model predicts about the input itself, while a
    v-prediction model's output lies far below it (mean difference < -1)."""
    param = next(unet.parameters())
    channels = int(unet.config.in_channels)
    sample = torch.full((1, channels, 8, 8), 0.5, dtype=param.dtype, device=param.device)
    context = torch.full((1, 2, int(unet.config.cross_attention_dim)), 0.5, dtype=param.dtype, device=param.device)
    timestep = torch.tensor([999], device=param.device)
    out = unet(sample, timestep, encoder_hidden_states=context).sample
    return (out.float() - sample[:, : out.shape[1]].float()).mean().item() < -1


def _switch_to_v_prediction(pipeline: DiffusionPipeline, spec: FamilySpec) -> None:
    """Give an SD2 pipeline loaded with the base config the 768-v settings: v scheduler and upcast attention."""
    from diffusers.models.attention_processor import Attention

    config = json.loads((CONFIGS_DIR / str(spec.v_config_dir) / "scheduler" / "scheduler_config.json").read_text())
    scheduler_cls = getattr(diffusers, config["_class_name"])
    pipeline.scheduler = scheduler_cls.from_config(config)
    for module in pipeline.unet.modules():
        if isinstance(module, Attention):
            module.upcast_attention = True
    pipeline.unet.register_to_config(upcast_attention=True)


def _resolve_prediction_type(pipeline: DiffusionPipeline, spec: FamilySpec, hint: str | None) -> str:
    if hint is not None or not spec.test_v_prediction:
        return hint or str(pipeline.scheduler.config.get("prediction_type", EPSILON))
    if not is_v_prediction_unet(pipeline.unet):
        return EPSILON
    _switch_to_v_prediction(pipeline, spec)
    return V_PREDICTION


def load_checkpoint(
    path: Path | str,
    *,
    cache_dir: Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    families: tuple[str, ...] = GENERATION_FAMILIES,
    parts: FlowParts | None = None,
) -> LoadedCheckpoint:
    """Load an A1111 single-file checkpoint (or a diffusers folder) into a ready pipeline, offline.
    `parts`: where a Flux transformer-only file finds its text encoders and VAE.

    Raises `ModelLoadError` naming the file for anything that is not a loadable checkpoint of one of `families`
    (a diffusers AuraFlow folder loads only when the caller, the trainer, asks for it), and `UnsafeFileError` for
    a pickle that would need to run code.
    """
    path = Path(path)
    if path.is_dir():
        return load_diffusers_folder(path, device=device, dtype=dtype, families=families)
    shapes = read_shapes(path)
    detected = detect_kind_from_keys(shapes)
    if detected.kind == CHECKPOINT and detected.family in FLOW_FILE_LOADERS and detected.family in families:
        pipeline = FLOW_FILE_LOADERS[str(detected.family)](path, parts=parts or FlowParts(), cache_dir=Path(cache_dir),
                                                          dtype=dtype)
        return LoadedCheckpoint(pipeline.to(device), str(detected.family), FLOW_MATCHING, False, path, None)
    family = str(_detect_checkpoint(path, shapes).family)
    spec = FAMILY_SPECS[family]
    hints = read_yaml_hints(path)
    overrides = _checkpoint_overrides(path, shapes, family, hints)
    is_inpaint = overrides["unet"]["in_channels"] == INPAINT_IN_CHANNELS
    pipeline_cls = _pipeline_class(spec, is_inpaint)
    overrides["model_index"] = {"_class_name": pipeline_cls.__name__}
    if hints.prediction_type is not None:
        overrides["scheduler"] = {"prediction_type": hints.prediction_type}
    base_dir = _choose_config_dir(spec, is_inpaint, hints.prediction_type)
    config_dir = write_derived_config(Path(cache_dir), base_dir, overrides, spec.tokenizers)
    logger.info("Loading %s (%s) with config %s", path.name, family, config_dir.name)
    pipeline = _build_pipeline(path, pipeline_cls, config_dir, dtype).to(device)
    prediction_type = _resolve_prediction_type(pipeline, spec, hints.prediction_type)
    return LoadedCheckpoint(pipeline, family, prediction_type, is_inpaint, path, config_dir)


def diffusers_folder_family(path: Path) -> str:
    """The family of a diffusers folder (from `model_index.json` and the text encoder's config). Raises
    `ModelLoadError` when the folder has no readable `model_index.json` or holds a pipeline we do not know."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(f"Folder '{path.name}' is not a diffusers model (no model_index.json).")
    try:
        model_index = json.loads(index_file.read_text(encoding="utf-8"))
        te_file = path / "text_encoder" / "config.json"
        te_config = json.loads(te_file.read_text(encoding="utf-8")) if te_file.is_file() else {}
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"Folder '{path.name}' has an unreadable config: {err}") from err
    family = detect_family_from_diffusers_config(model_index, te_config)
    if family is None:
        raise ModelLoadError(f"Folder '{path.name}' holds a {model_index.get('_class_name')}, which is not supported.")
    return family


def load_diffusers_folder(
    path: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    families: tuple[str, ...] = GENERATION_FAMILIES,
) -> LoadedCheckpoint:
    """A diffusers-format folder (with `model_index.json`), loaded as is."""
    family = diffusers_folder_family(path)
    if family not in families:
        reason = _FAMILY_REFUSALS.get(family, "'{name}' is a {family} model, which cannot be used here.")
        raise ModelLoadError(reason.format(name=path.name, family=family))
    try:
        pipeline = DiffusionPipeline.from_pretrained(str(path), local_files_only=True, torch_dtype=dtype)
    except _BUILD_ERRORS as err:
        raise ModelLoadError(f"Could not load diffusers model '{path.name}': {err}") from err
    fp8 = stored_in_fp8(path) if family in (AURAFLOW, FLUX) else None
    if fp8 is not None:  # keep the fp8 storage, upcast layer by layer while computing (as Forge does)
        pipeline.transformer.enable_layerwise_casting(storage_dtype=fp8, compute_dtype=dtype)
    pipeline = pipeline.to(device)
    unet = getattr(pipeline, "unet", None)
    if unet is None:  # a transformer (flow-matching) model
        return LoadedCheckpoint(pipeline, family, FLOW_MATCHING, False, path, path)
    prediction_type = str(pipeline.scheduler.config.get("prediction_type", EPSILON))
    is_inpaint = int(unet.config.in_channels) == INPAINT_IN_CHANNELS
    return LoadedCheckpoint(pipeline, family, prediction_type, is_inpaint, path, path)


# ------------------------------------------------------------------------------------------------------------------
# Standalone VAE
# ------------------------------------------------------------------------------------------------------------------


def _vae_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    shapes = read_shapes(path)
    detected = detect_kind_from_keys(shapes)
    if detected.kind != VAE:
        advice = "a full checkpoint" if detected.kind == CHECKPOINT else _WRONG_KIND_ADVICE.get(detected.kind, "")
        raise ModelLoadError(f"'{path.name}' is not a VAE file; it is {advice}.")
    if any(k.startswith(VAE_PREFIX) for k in shapes):
        shapes = {k[len(VAE_PREFIX):]: v for k, v in shapes.items() if k.startswith(VAE_PREFIX)}
    return shapes


def load_vae(
    path: Path | str, *, family: str, cache_dir: Path, dtype: torch.dtype = torch.float32
) -> AutoencoderKL:
    """A standalone VAE file (A1111 `models/VAE`), LDM keys with or without `first_stage_model.`, or diffusers keys.

    `family` picks the shipped VAE config (its scaling factor differs: 0.18215 SD1/SD2, 0.13025 SDXL).
    """
    path = Path(path)
    if family not in FAMILY_SPECS:
        raise ModelLoadError(f"Unknown model family '{family}' for VAE '{path.name}'.")
    shapes = _vae_shapes(path)
    with _naming_file(path):
        overrides = {"vae": infer_vae_config(shapes)}
    base_dir = CONFIGS_DIR / FAMILY_SPECS[family].config_dir
    config_dir = write_derived_config(Path(cache_dir), base_dir, overrides)
    guard = harmless_pickle_globals() if path.suffix.lower() in PICKLE_SUFFIXES else contextlib.nullcontext()
    try:
        with guard:
            vae = AutoencoderKL.from_single_file(
                str(path), config=str(config_dir), subfolder="vae", local_files_only=True, torch_dtype=dtype
            )
    except _BUILD_ERRORS as err:
        raise ModelLoadError(f"Could not load VAE '{path.name}': {_describe_build_error(err)}") from err
    if any(p.is_meta for p in vae.parameters()):
        raise ModelLoadError(f"VAE '{path.name}' is missing weights; the file is incomplete.")
    return vae
