"""Read a training config file: the UI's preset JSON or a SimpleTuner `config.json` (with its LyCORIS config and
multidatabackend files).

Why one reader: the CLI and the UI's "import" button accept both formats. Unknown keys are listed as ignored,
never a crash; options that only mean something on a GPU (quantisation, DeepSpeed, group offload) are accepted
and reported as not applied on this device. SimpleTuner key names are a table, not code.

Why an optional `PathPolicy`: the CLI reads the files its user names, anywhere; the web UI passes its policy, so a
config pasted by a client cannot make the server read files outside the data folder (a LyCORIS config, a
multidatabackend file, dataset folders).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webui.core.errors import ValidationError
from webui.core.path_policy import PathPolicy
from webui.training.config import (
    DatasetSubset,
    LycorisSpec,
    TrainingConfig,
    config_from_json,
    is_preset,
)
from webui.training.dataset import is_kohya_layout


@dataclass(frozen=True)
class LoadedConfig:
    """A config read from a file, the keys nobody used, and notes for the user."""

    config: TrainingConfig
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    source_format: str = "preset"


# SimpleTuner key -> (our field, converter). Converters get the raw value and return ours.
_DIRECT: dict[str, tuple[str, Any]] = {
    "pretrained_model_name_or_path": ("base_model", str),
    "output_dir": ("output_dir", str),
    "tracker_run_name": ("output_name", str),
    "train_batch_size": ("batch_size", int),
    "gradient_accumulation_steps": ("gradient_accumulation_steps", int),
    "learning_rate": ("learning_rate", float),
    "text_encoder_lr": ("text_encoder_lr", float),
    "max_train_steps": ("max_train_steps", int),
    "num_train_epochs": ("epochs", int),
    "lr_warmup_steps": ("lr_warmup_steps", int),
    "lr_num_cycles": ("lr_scheduler_num_cycles", int),
    "lr_power": ("lr_scheduler_power", float),
    "seed": ("seed", int),
    "mixed_precision": ("mixed_precision", str),
    "max_grad_norm": ("max_grad_norm", float),
    "checkpoints_total_limit": ("save_last_k", int),
    "validation_prompt": ("sample_prompt_text", str),
    "validation_step_interval": ("sample_every_n_steps", int),
    "user_prompt_library": ("sample_prompts", str),
    "flow_schedule_shift": ("flow_shift", float),
    "lora_rank": ("network_dim", int),
    "lora_alpha": ("network_alpha", float),
    "caption_dropout_probability": ("caption_dropout_rate", float),
    "train_text_encoder": ("train_text_encoder", "bool"),
    "gradient_checkpointing": ("gradient_checkpointing", "bool"),
}
_FAMILIES = {"sd1x": "sd1", "sd1": "sd1", "sd2x": "sd2", "sd2": "sd2", "sdxl": "sdxl", "auraflow": "auraflow"}
_OPTIMIZERS = {
    "adamw": "AdamW", "adamw_bf16": "AdamW", "optimi-adamw": "AdamW", "adamw_torch": "AdamW",
    "adamw8bit": "AdamW8bit", "bnb-adamw8bit": "AdamW8bit", "adamw_8bit": "AdamW8bit",
    "lion": "Lion", "optimi-lion": "Lion", "bnb-lion": "Lion",
    "prodigy": "Prodigy",
    "stableadamw": "StableAdamW", "optimi-stableadamw": "StableAdamW", "adamw_stable": "StableAdamW",
}
# Accepted, but only meaningful on a GPU (memory savers); reported as not applied on the CPU.
GPU_ONLY_KEYS = (
    "base_model_precision", "text_encoder_1_precision", "text_encoder_2_precision", "quantize_via",
    "enable_group_offload", "group_offload_type", "group_offload_blocks_per_group", "group_offload_use_stream",
    "group_offload_to_disk_path", "deepspeed_config", "enable_model_cpu_offload", "sageattention_usage",
    "attention_mechanism", "fuse_qkv_projections", "vae_cache_ondemand", "vae_batch_size",
)
_HANDLED = ("model_type", "lora_type", "lycoris_config", "model_family", "instance_data_dir",
            "data_backend_config", "lr_scheduler", "optimizer", "resolution", "resolution_type",
            "checkpoint_step_interval", "resume_from_checkpoint")


def _truthy(value: object) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ValidationError(f"{what} '{path}' does not exist.") from err
    except (OSError, json.JSONDecodeError) as err:
        raise ValidationError(f"{what} '{path}' is not valid JSON: {err}") from err


def _resolve(value: str, base: Path, policy: PathPolicy | None = None, what: str = "A path in the config") -> Path:
    """SimpleTuner paths are relative to where it runs; we also try the config file's folder. With a policy
    (a client's config) "where it runs" is the data folder, and the result must be a folder the policy allows."""
    if policy is not None:
        text = policy.check_text(value, what)
        beside = base / text
        if not text.startswith("/") and beside.exists():
            return policy.resolve(str(beside), what)
        return policy.resolve(text, what)
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    beside = base / path
    return beside if beside.exists() else path


# ------------------------------------------------------------------------------------------------------------------
# SimpleTuner pieces
# ------------------------------------------------------------------------------------------------------------------


def _lycoris_spec(value: object, base: Path, policy: PathPolicy | None) -> LycorisSpec:
    if isinstance(value, Mapping):
        return LycorisSpec.from_json(value)
    path = _resolve(str(value), base, policy, "lycoris_config")
    return LycorisSpec.from_json(_read_json(path, "LyCORIS config"), source=path.name)


def _resolution(value: object, kind: str) -> int:
    """SimpleTuner's resolution: pixels of the edge ("pixel", "pixel_area") or megapixels ("area")."""
    number = float(value)
    pixels = round((number * 1_000_000) ** 0.5) if kind == "area" or number <= 16 else round(number)
    return max(16, pixels // 8 * 8)


def _bucket_fields(resolution: int) -> dict[str, int]:
    """Bucket range around SimpleTuner's resolution (it has no kohya bucket options)."""
    return {"resolution": resolution, "min_bucket_reso": min(256, resolution), "max_bucket_reso":
            max(1024, resolution * 2), "bucket_reso_steps": 64 if resolution % 64 == 0 and resolution >= 256 else 8}


def _backend_subsets(entries: object, base: Path, notes: list[str],
                     policy: PathPolicy | None) -> tuple[list[DatasetSubset], int | None]:
    """multidatabackend.json -> subsets of the local image backends (+ the first backend's resolution)."""
    if not isinstance(entries, list):
        raise ValidationError("data_backend_config must be a JSON list of backends.")
    subsets, resolution = [], None
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name = str(entry.get("id", "backend"))
        if entry.get("dataset_type") in ("text_embeds", "image_embeds", "conditioning") or _truthy(
                entry.get("disabled", False)):
            continue
        if entry.get("type", "local") != "local":
            notes.append(f"Data backend '{name}' of type {entry.get('type')} skipped: only local folders are read.")
            continue
        if "instance_data_dir" not in entry:
            raise ValidationError(f"Data backend '{name}' has no instance_data_dir.")
        strategy = str(entry.get("caption_strategy", "textfile"))
        if strategy not in ("textfile", "filename", "instanceprompt"):
            raise ValidationError(f"Data backend '{name}': caption_strategy '{strategy}' is not supported "
                                  "(textfile, filename, instanceprompt).")
        if strategy == "instanceprompt" and not entry.get("instance_prompt"):
            raise ValidationError(f"Data backend '{name}' uses caption_strategy instanceprompt without an "
                                  "instance_prompt.")
        # SimpleTuner's repeats count extra passes: 0 means each image once per epoch.
        repeats = int(entry.get("repeats", 0) or 0) + 1
        path = _resolve(str(entry["instance_data_dir"]), base, policy, f"Data backend '{name}' instance_data_dir")
        subsets.append(DatasetSubset(str(path), repeats, strategy, str(entry.get("instance_prompt", "")),
                                     name=name))
        if resolution is None and "resolution" in entry:
            resolution = _resolution(entry["resolution"], str(entry.get("resolution_type", "pixel")))
        if entry.get("crop") is False:
            notes.append(f"Data backend '{name}': crop=false; images are still centre-cropped to their bucket.")
    return subsets, resolution


def _instance_dir(value: str, base: Path, policy: PathPolicy | None) -> dict[str, Any]:
    """A kohya-layout folder is scanned as such; a flat folder is one subset with text-file captions."""
    path = _resolve(value, base, policy, "instance_data_dir")
    if is_kohya_layout(path):
        return {"dataset_dir": str(path)}
    return {"subsets": (DatasetSubset(str(path), 1, "textfile", name=path.name),)}


def _convert(key: str, value: object, kind: Any) -> object:
    try:
        return _truthy(value) if kind == "bool" else kind(float(value) if kind is int else value)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"SimpleTuner option '{key}' has an invalid value {value!r}.") from err


def _network_fields(data: Mapping[str, Any], base: Path, policy: PathPolicy | None) -> dict[str, Any]:
    model_type = str(data.get("model_type", "lora"))
    if model_type != "lora":
        raise ValidationError(f"model_type '{model_type}' is not supported: only LoRA/LyCORIS training "
                              "(model_type lora).")
    lora_type = str(data.get("lora_type", "standard")).lower()
    if lora_type not in ("standard", "lycoris"):
        raise ValidationError(f"lora_type must be 'standard' or 'lycoris' (got '{lora_type}').")
    if lora_type == "standard":
        return {"network_type": "lora"}
    if "lycoris_config" not in data:
        raise ValidationError("lora_type is lycoris but no lycoris_config is given.")
    return {"network_type": "lycoris", "lycoris": _lycoris_spec(data["lycoris_config"], base, policy)}


def _choice_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "model_family" in data:
        family = _FAMILIES.get(str(data["model_family"]).lower())
        if family is None:
            raise ValidationError(f"model_family '{data['model_family']}' is not supported "
                                  f"({', '.join(sorted(_FAMILIES))}).")
        values["model_family"] = family
    if "optimizer" in data:
        optimizer = _OPTIMIZERS.get(str(data["optimizer"]).lower())
        if optimizer is None:
            raise ValidationError(f"optimizer '{data['optimizer']}' is not supported "
                                  f"({', '.join(sorted(_OPTIMIZERS))}).")
        values["optimizer"] = optimizer
    if "lr_scheduler" in data:
        values["lr_scheduler"] = str(data["lr_scheduler"])
    if "resolution" in data:
        values.update(_bucket_fields(_resolution(data["resolution"], str(data.get("resolution_type", "pixel")))))
    if "checkpoint_step_interval" in data:
        interval = int(float(data["checkpoint_step_interval"]))
        values.update(save_every_n_steps=interval, save_state_every_n_steps=interval)
    if str(data.get("resume_from_checkpoint", "")).strip():
        values["resume"] = str(data["resume_from_checkpoint"])
    return values


def _dataset_fields(data: Mapping[str, Any], base: Path, notes: list[str],
                    policy: PathPolicy | None) -> dict[str, Any]:
    if "data_backend_config" in data:
        entries = data["data_backend_config"]
        if not isinstance(entries, list):
            entries = _read_json(_resolve(str(entries), base, policy, "data_backend_config"), "data_backend_config")
        subsets, resolution = _backend_subsets(entries, base, notes, policy)
        if not subsets:
            raise ValidationError("data_backend_config has no enabled local image backend.")
        values: dict[str, Any] = {"subsets": tuple(subsets)}
        if resolution is not None and "resolution" not in data:
            values.update(_bucket_fields(resolution))
        return values
    if "instance_data_dir" in data:
        return _instance_dir(str(data["instance_data_dir"]), base, policy)
    return {}


def from_simpletuner(data: Mapping[str, Any], base: Path, device: str = "cpu",
                     policy: PathPolicy | None = None) -> LoadedConfig:
    """SimpleTuner's `config.json` (keys with or without a leading `--`) -> our config + ignored keys + notes."""
    data = {str(k).lstrip("-"): v for k, v in data.items()}
    notes: list[str] = []
    values: dict[str, Any] = {**_network_fields(data, base, policy), **_choice_fields(data),
                              **_dataset_fields(data, base, notes, policy)}
    for key, (name, kind) in _DIRECT.items():
        if key in data and data[key] is not None and str(data[key]) != "":
            values[name] = _convert(key, data[key], kind)
    if "lora_alpha" not in data and "network_dim" in values:
        values["network_alpha"] = float(values["network_dim"])  # SimpleTuner: alpha defaults to the rank
    if values.get("epochs") == 0:
        values["epochs"] = 1 if not values.get("max_train_steps") else 0
    if device == "cpu":
        notes += [f"{key}={data[key]!r}: GPU-only option, accepted but not applied on the CPU."
                  for key in GPU_ONLY_KEYS if key in data]
    used = set(_DIRECT) | set(_HANDLED) | set(GPU_ONLY_KEYS)
    ignored = tuple(sorted(key for key in data if key not in used))
    config = TrainingConfig(**{**values, "device": device})
    return LoadedConfig(config, ignored, tuple(notes), "simpletuner")


# ------------------------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------------------------


def load_config_data(data: Mapping[str, Any], base: Path, device: str = "cpu", *,
                     policy: PathPolicy | None = None) -> LoadedConfig:
    """A parsed JSON object in either format; `policy` confines the files and folders it names (see above)."""
    if not isinstance(data, Mapping):
        raise ValidationError("A training config must be a JSON object.")
    if is_preset(data) or "base_model" in data:
        config, ignored = config_from_json(data)
        return LoadedConfig(config, tuple(ignored), (), "preset")
    return from_simpletuner(data, base, device, policy)


def load_config_file(path: Path | str, device: str = "cpu", *, policy: PathPolicy | None = None) -> LoadedConfig:
    """A config file in either format; relative paths inside resolve against the working folder (with a policy:
    the data folder), then the file's own folder."""
    path = Path(path).expanduser()
    return load_config_data(_read_json(path, "Config file"), path.parent, device, policy=policy)
