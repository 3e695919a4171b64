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
import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import safetensors
import safetensors.torch
import torch
import yaml
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.loaders.single_file_utils import SingleFileComponentError

from webui.core.errors import ModelLoadError, UnsafeFileError
from webui.engine.models.clip_tokenizer import EOS_TOKEN, write_tokenizer_files
from webui.engine.models.detection import (
    AURAFLOW,
    CHECKPOINT,
    GENERATION_FAMILIES,
    SD1,
    SD2,
    SDXL,
    VAE,
    VAE_PREFIX,
    DetectedKind,
    detect_family_from_diffusers_config,
    detect_kind_from_keys,
    infer_architecture,
    infer_vae_config,
)
from webui.engine.models.safetensors_header import header_shapes, read_safetensors_header

logger = logging.getLogger(__name__)

CONFIGS_DIR = Path(__file__).parent / "configs"
SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_ALL_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES
EPSILON = "epsilon"
V_PREDICTION = "v_prediction"

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

INPAINT_IN_CHANNELS = 9
TXT2IMG_IN_CHANNELS = 4
FLOW_MATCHING = "flow_matching"
# Why a family a caller did not ask for is refused (AuraFlow folders are listed with the checkpoints, since the
# Train tab picks its base model there, but the generation pipelines cannot run them).
_FAMILY_REFUSALS = {
    AURAFLOW: "AuraFlow generation is not supported yet; '{name}' can be used as the base model in the Train tab "
              "(LoRA / LyCORIS training).",
}


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
# Reading state dicts safely
# ------------------------------------------------------------------------------------------------------------------


class _InertPickledObject:
    """Stands in for training-time objects that A1111-era `.ckpt` files carry next to the weights.

    PyTorch Lightning saved its `ModelCheckpoint` callback and numpy scalars (e.g. the global step) in SD 1.x
    checkpoints; A1111's restricted unpickler allows them by name. We map those names to this class, which runs
    none of their code and keeps nothing, so such files load with `weights_only=True`.
    """

    def __new__(cls, *args: object, **kwargs: object) -> _InertPickledObject:
        return super().__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        """Accept and drop whatever the pickle passes."""

    def __setstate__(self, state: object) -> None:
        """Drop the pickled state."""


_HARMLESS_PICKLE_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
)
_UNSAFE_MARKERS = ("Unsupported global", "unrecognized function", "allowlisted", "is blocked", "must be imported")


@contextlib.contextmanager
def _harmless_pickle_globals() -> Iterator[None]:
    """Allow the known-harmless globals (as inert stand-ins) for weights-only loads inside this block."""
    with torch.serialization.safe_globals([(_InertPickledObject, name) for name in _HARMLESS_PICKLE_GLOBALS]):
        yield


def _unwrap_state_dict(data: object, path: Path) -> dict[str, Any]:
    """A1111 reads `checkpoint["state_dict"]` when present (Lightning training checkpoints nest the weights)."""
    while isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise ModelLoadError(f"'{path.name}' does not contain a state dict (found {type(data).__name__}).")
    return dict(data)


def _load_pickle(path: Path) -> object:
    try:
        with _harmless_pickle_globals():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if any(marker in str(err) for marker in _UNSAFE_MARKERS):
            raise UnsafeFileError(
                f"Loading '{path.name}' was refused: it needs to run code to load, which could harm this computer. "
                "If you trust its source, convert it to .safetensors with another tool and load that instead."
            ) from err
        raise ModelLoadError(f"Model file '{path.name}' is corrupt or truncated (not a readable pickle).") from err
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, IndexError) as err:
        raise ModelLoadError(f"Model file '{path.name}' is corrupt or truncated ({err}).") from err


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    read_safetensors_header(path)  # precise "corrupt or truncated" message before loading anything
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"Model file '{path.name}' is corrupt or truncated ({err}).") from err


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"Model file '{path}' does not exist.")
    if path.suffix.lower() not in _ALL_SUFFIXES:
        raise ModelLoadError(f"'{path.name}' is not a model file type we can read ({', '.join(_ALL_SUFFIXES)}).")


def load_state_dict(path: Path | str) -> dict[str, Any]:
    """All tensors of a model file on the CPU, `state_dict` nesting removed.

    `.safetensors` via safetensors; `.ckpt/.pt/.pth/.bin` only via `torch.load(weights_only=True)`. Values are
    tensors for checkpoints; embedding `.pt` files keep their nested dicts (`string_to_param`).
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path)
    return _unwrap_state_dict(_load_pickle(path), path)


def read_shapes(path: Path | str) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a model file: header only for safetensors; pickles must be loaded (weights-only)."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return header_shapes(path)
    state = load_state_dict(path)
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


# ------------------------------------------------------------------------------------------------------------------
# A1111 yaml next to a checkpoint
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YamlHints:
    """What we honour from an LDM yaml: parameterization and a few UNet/VAE fields."""

    prediction_type: str | None = None
    use_linear_projection: bool | None = None
    num_head_channels: int | None = None
    num_heads: int | None = None
    cross_attention_dim: int | None = None
    scale_factor: float | None = None


def _dig(data: object, *keys: str) -> Mapping[str, Any]:
    """`data[k1][k2]...` when every level is a mapping, else an empty mapping (yamls vary a lot)."""
    for key in keys:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data if isinstance(data, Mapping) else {}


def _positive(value: object) -> int | None:
    """LDM yamls use -1 for "not set"."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _yaml_prediction_type(params: Mapping[str, Any]) -> str | None:
    """SD1/SD2 yamls say `parameterization: "v"`; SDXL (sgm) yamls name a `VScaling` denoiser scaling."""
    if params.get("parameterization") == "v":
        return V_PREDICTION
    if params.get("parameterization") == "eps":
        return EPSILON
    scaling = str(_dig(params, "denoiser_config", "params", "scaling_config").get("target", ""))
    if scaling:
        return V_PREDICTION if scaling.endswith("VScaling") else EPSILON
    return None


def read_yaml_hints(checkpoint_path: Path) -> YamlHints:
    """Read `<name>.yaml` beside the checkpoint (A1111 convention); no file gives empty hints."""
    yaml_path = checkpoint_path.with_suffix(".yaml")
    if not yaml_path.is_file():
        return YamlHints()
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ModelLoadError(f"'{yaml_path.name}' beside the checkpoint is not valid YAML: {err}") from err
    params = _dig(data, "model", "params")
    unet = _dig(params, "unet_config", "params") or _dig(params, "network_config", "params")  # LDM / sgm
    scale = params.get("scale_factor")
    linear = unet.get("use_linear_in_transformer")
    return YamlHints(
        prediction_type=_yaml_prediction_type(params),
        use_linear_projection=linear if isinstance(linear, bool) else None,
        num_head_channels=_positive(unet.get("num_head_channels")),
        num_heads=_positive(unet.get("num_heads")),
        cross_attention_dim=_positive(unet.get("context_dim")),
        scale_factor=float(scale) if isinstance(scale, int | float) and not isinstance(scale, bool) else None,
    )


def _apply_yaml_hints(overrides: dict[str, dict[str, Any]], hints: YamlHints) -> None:
    """The yaml wins over shape inference for the fields shapes cannot tell for sure (head split)."""
    unet = overrides["unet"]
    if hints.use_linear_projection is not None:
        unet["use_linear_projection"] = hints.use_linear_projection
    if hints.num_head_channels is not None:
        unet["attention_head_dim"] = [max(1, c // hints.num_head_channels) for c in unet["block_out_channels"]]
    elif hints.num_heads is not None:
        unet["attention_head_dim"] = hints.num_heads
    if hints.cross_attention_dim is not None:
        unet["cross_attention_dim"] = hints.cross_attention_dim
    if hints.scale_factor is not None:
        overrides.setdefault("vae", {})["scaling_factor"] = hints.scale_factor


# ------------------------------------------------------------------------------------------------------------------
# Derived config folders
# ------------------------------------------------------------------------------------------------------------------


def _component_file(component: str) -> str:
    if component == "model_index":
        return "model_index.json"
    if component == "scheduler":
        return "scheduler/scheduler_config.json"
    return f"{component}/config.json"


def _derived_files(base_dir: Path, overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Every JSON file of the shipped folder, with each component's overrides applied (relative path -> text)."""
    files: dict[str, str] = {}
    for source in sorted(base_dir.rglob("*.json")):
        rel = source.relative_to(base_dir).as_posix()
        data = json.loads(source.read_text(encoding="utf-8"))
        for component, fields in overrides.items():
            if _component_file(component) == rel:
                data.update(fields)
        files[rel] = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return files


def _tokenizer_source(cache_dir: Path, pad_token: str) -> Path:
    """One generated tokenizer folder per pad token, shared by all derived folders."""
    name = "clip-pad-" + hashlib.sha256(pad_token.encode()).hexdigest()[:8]
    return write_tokenizer_files(cache_dir / "tokenizers" / name, pad_token=pad_token)


def write_derived_config(
    cache_dir: Path,
    base_dir: Path,
    overrides: Mapping[str, Mapping[str, Any]],
    tokenizers: tuple[tuple[str, str], ...] = (),
) -> Path:
    """Write (once) the shipped `base_dir` with `overrides` and tokenizer folders; return the folder.

    The folder name holds a hash of everything written, so it is immutable once complete; it is assembled in a
    temporary folder and renamed into place, so a crash or a concurrent writer never leaves half a folder.
    """
    files = _derived_files(base_dir, overrides)
    digest = hashlib.sha256(json.dumps([files, list(tokenizers)], sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) / "configs"
    target = root / f"{base_dir.name}-{digest}"
    if (target / "model_index.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        for rel, text in files.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text, encoding="utf-8")
        for folder, pad in tokenizers:
            shutil.copytree(_tokenizer_source(Path(cache_dir), pad), staging / folder)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
        logger.debug("Derived config %s was written concurrently", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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
    _apply_yaml_hints(overrides, hints)
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
    guard = _harmless_pickle_globals() if path.suffix.lower() in PICKLE_SUFFIXES else contextlib.nullcontext()
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
) -> LoadedCheckpoint:
    """Load an A1111 single-file checkpoint (or a diffusers folder) into a ready pipeline, offline.

    Raises `ModelLoadError` naming the file for anything that is not a loadable checkpoint of one of `families`
    (a diffusers AuraFlow folder loads only when the caller, the trainer, asks for it), and `UnsafeFileError` for
    a pickle that would need to run code.
    """
    path = Path(path)
    if path.is_dir():
        return load_diffusers_folder(path, device=device, dtype=dtype, families=families)
    shapes = read_shapes(path)
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
    guard = _harmless_pickle_globals() if path.suffix.lower() in PICKLE_SUFFIXES else contextlib.nullcontext()
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
