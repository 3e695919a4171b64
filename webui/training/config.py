"""The frozen description of one training job, and its JSON form (the UI's preset format).

Why one dataclass: the UI form, a saved preset, the SimpleTuner importer and the CLI all end in the same
`TrainingConfig`; the trainer reads nothing else. Variants (a resume, a test with fewer steps) are made with
`dataclasses.replace`, never by mutation. Validation returns every problem at once so a form can show them all.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from webui.core.errors import ValidationError
from webui.core.limits import LIMITS

NETWORK_TYPES = ("lora", "lycoris")
LYCORIS_ALGOS = ("lokr", "loha", "locon", "lora")
OPTIMIZERS = ("AdamW", "AdamW8bit", "Lion", "Prodigy", "StableAdamW")
SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial")
MIXED_PRECISION = ("no", "fp16", "bf16")
FAMILIES = ("auto", "sd1", "sd2", "sdxl", "auraflow")
PREDICTION_TYPES = ("auto", "epsilon", "v_prediction")
CAPTION_STRATEGIES = ("textfile", "filename", "instanceprompt", "folder")
PRESET_FORMAT = "sd-studio-training-preset"
PRESET_VERSION = 1
_REQUIRED_LYCORIS_KEYS = ("multiplier", "linear_dim", "linear_alpha")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy (nested dicts stay plain: they are only ever read)."""
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class LycorisSpec:
    """SimpleTuner's `lycoris_config.json`: required multiplier/linear_dim/linear_alpha, optional `algo`,
    `apply_preset` and any algorithm keyword (factor, conv_dim, ...), which are passed on as they are."""

    algo: str = "lokr"
    multiplier: float = 1.0
    linear_dim: int = 10000
    linear_alpha: float = 1.0
    apply_preset: Mapping[str, Any] = field(default_factory=lambda: _frozen_mapping(None))
    extra: Mapping[str, Any] = field(default_factory=lambda: _frozen_mapping(None))

    @classmethod
    def from_json(cls, data: object, source: str = "lycoris_config") -> LycorisSpec:
        """Validate SimpleTuner's JSON; raises `ValidationError` naming the missing or wrong keys."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"{source} must be a JSON object like {{\"algo\": \"lokr\", \"multiplier\": 1.0, "
                                  f"\"linear_dim\": 10000, \"linear_alpha\": 1}} (got {type(data).__name__}).")
        missing = [key for key in _REQUIRED_LYCORIS_KEYS if key not in data]
        if missing:
            raise ValidationError(f"{source} is missing the required key(s) {', '.join(missing)} "
                                  f"(required: {', '.join(_REQUIRED_LYCORIS_KEYS)}).")
        algo = str(data.get("algo", "lokr")).lower()
        if algo not in LYCORIS_ALGOS:
            raise ValidationError(f"{source}: algo '{algo}' is not supported; use one of {', '.join(LYCORIS_ALGOS)}.")
        preset = data.get("apply_preset") or {}
        if not isinstance(preset, Mapping):
            raise ValidationError(f"{source}: apply_preset must be an object with target_module / module_algo_map.")
        try:
            numbers = (float(data["multiplier"]), int(data["linear_dim"]), float(data["linear_alpha"]))
        except (TypeError, ValueError) as err:
            raise ValidationError(f"{source}: multiplier, linear_dim and linear_alpha must be numbers ({err}).") \
                from err
        extra = {k: v for k, v in data.items() if k not in (*_REQUIRED_LYCORIS_KEYS, "algo", "apply_preset")}
        return cls(algo, *numbers, apply_preset=_frozen_mapping(preset), extra=_frozen_mapping(extra))

    def to_json(self) -> dict[str, Any]:
        return {"algo": self.algo, "multiplier": self.multiplier, "linear_dim": self.linear_dim,
                "linear_alpha": self.linear_alpha, **_plain(self.extra),
                **({"apply_preset": _plain(self.apply_preset)} if self.apply_preset else {})}


@dataclass(frozen=True)
class DatasetSubset:
    """One image folder with its repeats and where its captions come from (a kohya `<repeats>_<name>` folder or
    a SimpleTuner data backend). `caption_strategy` "textfile" falls back to `fallback_caption` (kohya: the
    folder name) when an image has no caption file."""

    path: str
    repeats: int = 1
    caption_strategy: str = "textfile"
    instance_prompt: str = ""
    fallback_caption: str = ""
    name: str = ""


@dataclass(frozen=True)
class TrainingConfig:
    """Every option of a LoRA / LyCORIS training job, with kohya-like defaults."""

    # what to train on and what to produce
    output_name: str = "my-lora"
    base_model: str = ""
    model_family: str = "auto"
    prediction_type: str = "auto"
    dataset_dir: str = ""
    subsets: tuple[DatasetSubset, ...] = ()
    output_dir: str = ""
    # network
    network_type: str = "lora"
    network_dim: int = 8
    network_alpha: float = 4.0
    train_unet: bool = True
    train_text_encoder: bool = False
    lycoris: LycorisSpec | None = None
    # length and batching
    epochs: int = 1
    max_train_steps: int = 0
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    # images and captions
    resolution: int = 512
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    caption_extension: str = ".txt"
    keep_tokens: int = 0
    shuffle_caption: bool = False
    caption_dropout_rate: float = 0.0
    # optimisation
    learning_rate: float = 1e-4
    text_encoder_lr: float = 5e-5
    optimizer: str = "AdamW"
    weight_decay: float = 1e-2
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    lr_scheduler_num_cycles: int = 1
    lr_scheduler_power: float = 1.0
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    cache_latents: bool = False
    cache_text_embeddings: bool = False
    seed: int = 42
    flow_shift: float = 3.0
    # saving, resuming, sampling
    save_every_n_epochs: int = 0
    save_every_n_steps: int = 0
    save_last_k: int = 0
    save_state_every_n_steps: int = 0
    resume: str = ""
    sample_every_n_epochs: int = 0
    sample_every_n_steps: int = 0
    sample_prompts: str = ""
    sample_prompt_text: str = ""
    # execution
    device: str = "cpu"
    num_processes: int = 1
    threads: int = 0

    @property
    def is_lycoris(self) -> bool:
        return self.network_type == "lycoris"

    def problems(self) -> list[str]:
        """Every invalid field, as sentences a user can act on (empty when the config is usable)."""
        checks = [
            (bool(self.output_name.strip()) and not any(c in self.output_name for c in "/\\\x00")
             and self.output_name.strip() not in (".", ".."),
             "Output name must be a plain file name (no folders)."),
            (bool(self.base_model), "Choose a base model."),
            (bool(self.dataset_dir or self.subsets), "Choose a dataset folder."),
            (self.network_type in NETWORK_TYPES, f"Network type must be one of {', '.join(NETWORK_TYPES)}."),
            (self.network_type != "lycoris" or self.lycoris is not None, "LyCORIS needs a lycoris config."),
            (self.network_type != "lora" or 1 <= self.network_dim <= LIMITS.max_network_dim,
             f"Network dim must be between 1 and {LIMITS.max_network_dim} (got {self.network_dim})."),
            (self.train_unet or self.train_text_encoder, "Train the UNet, the text encoder, or both."),
            (self.epochs >= 1 or self.max_train_steps >= 1, "Set epochs or max train steps (at least 1)."),
            (self.batch_size >= 1 and self.gradient_accumulation_steps >= 1,
             "Batch size and gradient accumulation must be at least 1."),
            (self.resolution >= 16 and self.resolution % 8 == 0, "Resolution must be a multiple of 8, at least 16."),
            (self.resolution <= LIMITS.max_training_resolution and
             (self.max_bucket_reso <= LIMITS.max_training_resolution or not self.enable_bucket),
             f"Resolution and maximum bucket resolution must be at most {LIMITS.max_training_resolution}."),
            (self.bucket_reso_steps >= 8 and self.bucket_reso_steps % 8 == 0, "Bucket step must be a multiple of 8."),
            (self.min_bucket_reso <= self.resolution <= self.max_bucket_reso or not self.enable_bucket,
             "Resolution must lie between the minimum and maximum bucket resolution."),
            (0.0 <= self.caption_dropout_rate <= 1.0, "Caption dropout must be between 0 and 1."),
            (self.keep_tokens >= 0, "keep_tokens must not be negative."),
            (self.learning_rate > 0 and self.text_encoder_lr >= 0, "Learning rates must be positive."),
            (self.optimizer in OPTIMIZERS, f"Optimizer must be one of {', '.join(OPTIMIZERS)}."),
            (self.lr_scheduler in SCHEDULERS, f"Scheduler must be one of {', '.join(SCHEDULERS)}."),
            (self.mixed_precision in MIXED_PRECISION, f"Mixed precision must be one of {', '.join(MIXED_PRECISION)}."),
            (self.model_family in FAMILIES, f"Model family must be one of {', '.join(FAMILIES)}."),
            (self.prediction_type in PREDICTION_TYPES,
             f"Prediction type must be one of {', '.join(PREDICTION_TYPES)}."),
            (all(s.caption_strategy in CAPTION_STRATEGIES for s in self.subsets),
             f"Caption strategy must be one of {', '.join(CAPTION_STRATEGIES)}."),
            (min(self.save_every_n_epochs, self.save_every_n_steps, self.save_last_k, self.lr_warmup_steps) >= 0,
             "Save intervals, keep-last and warmup steps must not be negative."),
            (1 <= self.num_processes <= LIMITS.max_training_processes,
             f"Number of processes must be between 1 and {LIMITS.max_training_processes} (got {self.num_processes})."),
        ]
        return [message for ok, message in checks if not ok]

    def validate(self) -> TrainingConfig:
        problems = self.problems()
        if problems:
            raise ValidationError("Training settings are invalid: " + " ".join(problems))
        return self


# ------------------------------------------------------------------------------------------------------------------
# JSON (UI preset) form
# ------------------------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready copy: read-only mappings and tuples become dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def config_to_json(config: TrainingConfig) -> dict[str, Any]:
    """The UI preset: every field by name, plus a format marker so loaders can tell it from SimpleTuner's."""
    data: dict[str, Any] = {"format": PRESET_FORMAT, "version": PRESET_VERSION}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name == "lycoris":
            data[item.name] = value.to_json() if value is not None else None
        elif item.name == "subsets":
            data[item.name] = [dataclasses.asdict(s) for s in value]
        else:
            data[item.name] = _plain(value)
    return data


_FIELD_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """JSON (and form) values into the field's type: "4e-5" -> 4e-05, "true" -> True, 2.0 -> 2."""
    kind = _FIELD_TYPES.get(annotation)
    if kind is None or value is None:
        return value
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
        if kind is int:
            return int(float(value))
        return kind(value)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"Setting '{name}' must be a {annotation} (got {value!r}).") from err


def config_from_json(data: Mapping[str, Any]) -> tuple[TrainingConfig, list[str]]:
    """A UI preset -> (config, names of keys we did not know). Unknown keys never fail a load."""
    known = {item.name: item for item in dataclasses.fields(TrainingConfig)}
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in data.items():
        if key in ("format", "version"):
            continue
        item = known.get(key)
        if item is None:
            ignored.append(key)
        elif key == "lycoris":
            values[key] = LycorisSpec.from_json(value) if value else None
        elif key == "subsets":
            values[key] = tuple(DatasetSubset(**{k: v for k, v in dict(s).items()
                                                 if k in DatasetSubset.__dataclass_fields__}) for s in value or ())
        else:
            values[key] = _coerce(key, str(item.type), value)
    return TrainingConfig(**values), ignored


def save_preset(config: TrainingConfig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_to_json(config), indent=2) + "\n", encoding="utf-8")
    return path


def is_preset(data: Mapping[str, Any]) -> bool:
    return data.get("format") == PRESET_FORMAT
