"""Shared fixtures: one thread for torch (2-core machines), offline hub, tiny models built once per run."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DISABLE_TELEMETRY", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # core-only test runs do not need torch
    pass


import shutil  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from webui.training.config import TrainingConfig  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny random SD1/SD2/SDXL models written once per run as A1111 single-file checkpoints (fp16)."""
    import torch

    from webui.testing.tiny_models import write_tiny_checkpoint

    folder = tmp_path_factory.mktemp("tiny-models")
    files = {family: write_tiny_checkpoint(folder / f"tiny-{family}.safetensors", family, seed=seed,
                                           dtype=torch.float16)
             for seed, family in enumerate(("sd1", "sd2", "sdxl"))}
    files["sd1-other"] = write_tiny_checkpoint(folder / "tiny-sd1-other.safetensors", "sd1", seed=7,
                                               dtype=torch.float16)
    return files


def make_data_dir(root: Path, checkpoints: dict[str, Path], families=("sd1",)) -> Path:
    """A data dir with A1111's folders and the given tiny checkpoints copied into models/Stable-diffusion."""
    ckpt_dir = root / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for family in families:
        shutil.copy(checkpoints[family], ckpt_dir / checkpoints[family].name)
    return root


def make_settings(data_dir: Path, **overrides):
    from webui.core.settings import Paths, Settings

    fields = {"paths": Paths.from_dirs(data_dir), "device": "cpu", "include_demo_model": False, "api": True}
    fields.update(overrides)
    return Settings(**fields)


@pytest.fixture(scope="session")
def sd1_services(tmp_path_factory, tiny_checkpoints):
    """One services object with the tiny SD1 model loaded, shared by the tests that only generate."""
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("data-sd1"), tiny_checkpoints, ("sd1", "sd1-other"))
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
    yield services
    services.runtime.executor.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """uvicorn serving an app in a background thread of the test process."""

    def __init__(self, app, port: int):
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        self.app = app
        # Open streams (a gradio_client's heartbeat) would hold the stop for as long as the join waits.
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        from app import end_gradio_streams

        end_gradio_streams(self.app)  # as the real server does when it stops
        self.server.should_exit = True
        self.thread.join(10)


# ----- training: datasets, AuraFlow, configs, services with a training worker -----------------------------------
FORMATS_LOKR = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 16,
                "apply_preset": {"target_module": ["Attention", "FeedForward"],
                                 "module_algo_map": {"Attention": {"factor": 16}, "FeedForward": {"factor": 8}}}}


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> Path:
    """Two kohya folders, 32x32 images: 4 images x 1 repeat + 2 images x 2 repeats."""
    from webui.testing.training_data import write_kohya_dataset

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


def submit_form(services, values: dict):
    """Submit a Train-tab form as the tab does: form values -> checked config -> job."""
    return services.training.submit(services.training.form_config(values))


@pytest.fixture()
def services(tmp_path, tiny_checkpoints, shapes_dataset):
    """Services on the tiny SD1 model with a training worker (stopped, with its jobs, afterwards). The shared
    dataset lies outside the data folder, so it is allowed as with `--gradio-allowed-path`."""
    from webui.core.settings import SecuritySettings
    from webui.services import build_services

    services = build_services(make_settings(make_data_dir(tmp_path, tiny_checkpoints, ("sd1",)),
                                            security=SecuritySettings(allowed_paths=(shapes_dataset,))))
    yield services
    services.runtime.training_worker.shutdown(terminate=True)
    services.runtime.executor.shutdown()


@pytest.fixture()
def parses(monkeypatch) -> list[str]:
    """Every prompt `webui.core.prompt_parser.parse_full` (the one function that takes a prompt apart) is called
    with during the test: how tests count parses."""
    from webui.core import prompt_parser

    seen: list[str] = []
    real = prompt_parser.parse_full

    def spy(prompt: str, steps: int, **kwargs) -> prompt_parser.ParsedPrompt:
        seen.append(prompt)
        return real(prompt, steps, **kwargs)

    monkeypatch.setattr(prompt_parser, "parse_full", spy)
    return seen


def serve_train_ui(root: Path, checkpoints: dict[str, Path], dataset: Path):
    """The real app (UI only) on the tiny SD1 model, with `dataset` (outside the data folder) allowed as with
    `--gradio-allowed-path`; yields (services, gradio_client) and stops the worker and executor afterwards."""
    from gradio_client import Client

    from app import build_app
    from webui.core.settings import SecuritySettings
    from webui.services import build_services

    services = build_services(make_settings(make_data_dir(root, checkpoints, ("sd1",)), api=False,
                                            security=SecuritySettings(allowed_paths=(dataset,))))
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.training_worker.shutdown(terminate=True)
    services.runtime.executor.shutdown()


def b64_png(image) -> str:
    """A PIL image as the plain base64 PNG A1111 clients send in API bodies."""
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# Names of the flow-matching models in `flow_data` (models/Stable-diffusion).
AURA = "tiny-auraflow"
FLUX_DEV = "tiny-flux"
FLUX_SCHNELL = "tiny-flux-schnell"
FLUX_FULL = "flux-full.safetensors"
FLUX_ONLY = "flux-transformer.safetensors"
FLUX_FP8 = "flux-transformer-fp8.safetensors"


@pytest.fixture(scope="session")
def flow_data(tmp_path_factory, tiny_auraflow) -> Path:
    """A data dir holding every layout: AuraFlow and Flux folders, Flux single files and loose parts."""
    import torch

    from webui.testing.tiny_flux import (
        write_tiny_flux_checkpoint,
        write_tiny_flux_folder,
        write_tiny_flux_parts,
        write_tiny_flux_transformer,
    )

    root = tmp_path_factory.mktemp("flow-data")
    ckpt = root / "models" / "Stable-diffusion"
    ckpt.mkdir(parents=True)
    shutil.copytree(tiny_auraflow, ckpt / AURA)
    write_tiny_flux_folder(ckpt / FLUX_DEV)
    write_tiny_flux_folder(ckpt / FLUX_SCHNELL, seed=1, schnell=True)
    write_tiny_flux_checkpoint(ckpt / FLUX_FULL, tokenizer_dir=root / ".tok")
    write_tiny_flux_transformer(ckpt / FLUX_ONLY, tokenizer_dir=root / ".tok")
    write_tiny_flux_transformer(ckpt / FLUX_FP8, dtype=torch.float8_e4m3fn, tokenizer_dir=root / ".tok")
    write_tiny_flux_parts(root / "models" / "text_encoder", root / "models" / "VAE")
    return root
