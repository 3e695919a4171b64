"""Training fixtures: tiny checkpoints (from the session fixture), synthetic kohya datasets, config builder."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_data_dir, make_settings
from webui.testing.training_data import write_kohya_dataset
from webui.training.config import TrainingConfig

FORMATS_LOKR = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 16,
                "apply_preset": {"target_module": ["Attention", "FeedForward"],
                                 "module_algo_map": {"Attention": {"factor": 16}, "FeedForward": {"factor": 8}}}}


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> Path:
    """Two kohya folders, 32x32 images: 4 images x 1 repeat + 2 images x 2 repeats."""
    root = tmp_path_factory.mktemp("shapes")
    write_kohya_dataset(root, {"shapes": 1}, images_per_folder=4)
    write_kohya_dataset(root / "more", {"blobs": 2}, images_per_folder=2)
    for folder in (root / "more").iterdir():
        folder.rename(root / folder.name)
    (root / "more").rmdir()
    return root


@pytest.fixture(scope="session")
def tiny_auraflow(tmp_path_factory) -> Path:
    """A tiny random AuraFlow saved once per run as a diffusers folder (`AuraFlowPipeline.save_pretrained`)."""
    from webui.testing.tiny_auraflow import write_tiny_auraflow

    return write_tiny_auraflow(tmp_path_factory.mktemp("tiny-auraflow") / "tiny-auraflow")


def tiny_config(checkpoint: Path, dataset: Path, **fields) -> TrainingConfig:
    """32x32 training, single bucket, small LoRA; override anything with `fields`."""
    base = {"output_name": "tiny", "base_model": str(checkpoint), "dataset_dir": str(dataset), "resolution": 32,
            "min_bucket_reso": 32, "max_bucket_reso": 64, "bucket_reso_steps": 32, "max_train_steps": 4,
            "batch_size": 2, "network_dim": 4, "network_alpha": 2.0, "learning_rate": 1e-2, "seed": 3}
    return TrainingConfig(**{**base, **fields})


@pytest.fixture()
def services(tmp_path, tiny_checkpoints, shapes_dataset):
    """Services on the tiny SD1 model with a training worker (stopped, with its jobs, afterwards). The shared
    dataset lies outside the data folder, so it is allowed as with `--gradio-allowed-path`."""
    from webui.core.settings import SecuritySettings
    from webui.services import build_services

    services = build_services(make_settings(make_data_dir(tmp_path, tiny_checkpoints, ("sd1",)),
                                            security=SecuritySettings(allowed_paths=(shapes_dataset,))))
    yield services
    services.training.shutdown(terminate=True)
    services.executor.shutdown()
