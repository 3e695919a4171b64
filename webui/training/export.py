"""Write trained networks as kohya/A1111 `.safetensors` files with `ss_*` metadata, and prune old epochs.

Why our own metadata: A1111, civitai and the Extra Networks cards read `ss_*` keys (base model version, dim,
alpha, tag frequency, ...) and `sshs_model_hash` (kohya's precomputed "addnet" hash: sha256 of the tensor data,
header excluded, so editing metadata later keeps it). Files are written to a temporary name and renamed, so the
LoRA list never shows half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch

from webui.training.config import TrainingConfig
from webui.training.dataset import Dataset

BASE_MODEL_VERSIONS = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0", "auraflow": "auraflow"}
_EPOCH_FILE = re.compile(r"^(?P<name>.+)-(?P<number>\d{6})$")
_STEP_FILE = re.compile(r"^(?P<name>.+)-step(?P<number>\d{8})$")


def tag_frequency(dataset: Dataset) -> dict[str, dict[str, int]]:
    """kohya's `ss_tag_frequency`: per folder, how often each comma-separated tag occurs (times repeats no)."""
    result: dict[str, Counter[str]] = {}
    for item in dataset.items:
        folder = Path(dataset.subsets[item.subset].path).name
        tags = (t.strip() for t in item.caption.split(","))
        result.setdefault(folder, Counter()).update(t for t in tags if t)
    return {folder: dict(counts) for folder, counts in result.items()}


def training_metadata(config: TrainingConfig, family: str, dataset: Dataset, network_meta: Mapping[str, str],
                      *, epoch: int, step: int, started_at: float, base_model_hash: str = "") -> dict[str, str]:
    """Every `ss_*` key we know, as strings (safetensors metadata is str -> str)."""
    meta = {
        "ss_output_name": config.output_name,
        "ss_base_model_version": BASE_MODEL_VERSIONS.get(family, family),
        "ss_v2": str(family == "sd2"),
        "ss_sd_model_name": Path(config.base_model).name,
        "ss_new_sd_model_hash": base_model_hash,
        "ss_resolution": f"({config.resolution}, {config.resolution})",
        "ss_tag_frequency": json.dumps(tag_frequency(dataset)),
        "ss_num_train_images": str(len(dataset.samples())),
        "ss_num_epochs": str(epoch),
        "ss_epoch": str(epoch),
        "ss_steps": str(step),
        "ss_max_train_steps": str(config.max_train_steps),
        "ss_training_started_at": str(started_at),
        "ss_batch_size_per_device": str(config.batch_size),
        "ss_gradient_accumulation_steps": str(config.gradient_accumulation_steps),
        "ss_learning_rate": str(config.learning_rate),
        "ss_unet_lr": str(config.learning_rate if config.train_unet else 0),
        "ss_text_encoder_lr": str(config.text_encoder_lr if config.train_text_encoder else 0),
        "ss_optimizer": config.optimizer,
        "ss_lr_scheduler": config.lr_scheduler,
        "ss_lr_warmup_steps": str(config.lr_warmup_steps),
        "ss_max_grad_norm": str(config.max_grad_norm),
        "ss_mixed_precision": config.mixed_precision,
        "ss_seed": str(config.seed),
        "ss_keep_tokens": str(config.keep_tokens),
        "ss_shuffle_caption": str(config.shuffle_caption),
        "ss_caption_dropout_rate": str(config.caption_dropout_rate),
        "ss_enable_bucket": str(config.enable_bucket),
        "ss_min_bucket_reso": str(config.min_bucket_reso),
        "ss_max_bucket_reso": str(config.max_bucket_reso),
        "ss_bucket_no_upscale": str(config.bucket_no_upscale),
        "ss_gradient_checkpointing": str(config.gradient_checkpointing),
        "ss_cache_latents": str(config.cache_latents),
        "ss_network_train_unet_only": str(not config.train_text_encoder),
        "ss_network_train_text_encoder_only": str(not config.train_unet),
    }
    meta.update(network_meta)
    return meta


def addnet_hash(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """sha256 of the tensor data as safetensors lays it out (the header, i.e. the metadata, excluded)."""
    data = safetensors.torch.save(dict(tensors), metadata=dict(metadata))
    header_length = int.from_bytes(data[:8], "little")
    return hashlib.sha256(data[8 + header_length:]).hexdigest()


def write_network_file(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Path:
    """Atomically write `tensors` with `metadata` + `sshs_model_hash`."""
    meta = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    meta["sshs_model_hash"] = addnet_hash(tensors, meta)
    meta.update({k: v for k, v in metadata.items() if not k.startswith("ss_")})
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    safetensors.torch.save_file(dict(tensors), str(temp), metadata=meta)
    os.replace(temp, path)
    return path


def epoch_file(output_dir: Path, name: str, epoch: int) -> Path:
    return output_dir / f"{name}-{epoch:06d}.safetensors"


def step_file(output_dir: Path, name: str, step: int) -> Path:
    return output_dir / f"{name}-step{step:08d}.safetensors"


def prune_saved(output_dir: Path, name: str, keep: int) -> list[Path]:
    """Keep the newest `keep` intermediate files (epoch and step saves counted separately); the final
    `name.safetensors` is never touched. `keep` 0 keeps everything. Returns the removed files."""
    if keep <= 0 or not output_dir.is_dir():
        return []
    removed: list[Path] = []
    for pattern in (_EPOCH_FILE, _STEP_FILE):
        numbered = []
        for path in output_dir.glob(f"{name}-*.safetensors"):
            match = pattern.match(path.stem)
            if match and match.group("name") == name:
                numbered.append((int(match.group("number")), path))
        for _, path in sorted(numbered)[:-keep]:
            path.unlink(missing_ok=True)
            path.with_suffix(".preview.png").unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_preview(network_file: Path, sample: Path | None) -> Path | None:
    """The last sample image as A1111's card preview (`name.preview.png` beside the file)."""
    if sample is None or not sample.is_file():
        return None
    target = network_file.with_suffix(".preview.png")
    shutil.copyfile(sample, target)
    return target
