"""Everything a training run builds once before its first step: the model, dataset, network, optimizer, caches.

Why apart from the loop (`trainer.py`): setup decides what the run is (which device and rank, which family and
hooks, how many steps and epochs, what is cached, which config adjustments the model forces) and reports each
decision as a note; the loop then only moves through (epoch, batch) positions over a finished `Session`. The order
of the steps below is part of the run's reproducibility (the torch seed is set after the dataset scan and before
the network's weights are initialised).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from webui.core.errors import ValidationError
from webui.engine.models.detection import AURAFLOW, GENERATION_FAMILIES
from webui.engine.models.hashing import HashCache
from webui.engine.models.loader import LoadedCheckpoint, load_checkpoint
from webui.training.cache import LatentCache, TextCache
from webui.training.config import TrainingConfig
from webui.training.dataset import Dataset, scan_dataset, steps_per_epoch
from webui.training.distributed import DistContext
from webui.training.events import EventSink
from webui.training.families import SDHooks, denoiser_of, hooks_for
from webui.training.network_base import TrainingNetwork
from webui.training.networks import create_network
from webui.training.optim import autocast_dtype, create_optimizer, create_scheduler
from webui.training.samples import SamplePrompt, load_sample_prompts

TRAINABLE_FAMILIES = (*GENERATION_FAMILIES, AURAFLOW)
# Families whose text encoder is never trained here (SimpleTuner trains only AuraFlow's transformer too).
_FROZEN_TEXT_ENCODER = (AURAFLOW,)


@dataclass(frozen=True)
class TrainerPaths:
    """Where a run writes: network files (`output_dir`), resume state and samples (`work_dir`), and the app's
    cache folder (derived model configs, file hashes; latent/text caches live in `cache_dir/training`)."""

    output_dir: Path
    work_dir: Path
    cache_dir: Path

    @property
    def state_dir(self) -> Path:
        return self.work_dir / "state"

    @property
    def samples_dir(self) -> Path:
        return self.work_dir / "samples"


@dataclass
class Session:
    """Everything built once per run (mutable run state lives in the loop, not here)."""

    config: TrainingConfig
    loaded: LoadedCheckpoint
    family: str
    hooks: SDHooks
    dataset: Dataset
    network: TrainingNetwork
    optimizer: torch.optim.Optimizer
    scheduler: object
    latents: LatentCache
    texts: TextCache
    device: torch.device
    amp_dtype: torch.dtype | None
    generator: torch.Generator
    steps_per_epoch: int
    total_steps: int
    total_micro_steps: int
    total_epochs: int
    prompts: list[SamplePrompt]
    model_hash: str
    use_latent_cache: bool
    use_text_cache: bool
    trainable: list[torch.nn.Parameter] = field(default_factory=list)
    dist: DistContext = field(default_factory=DistContext)
    scaler: torch.amp.GradScaler | None = None


def plan_steps(config: TrainingConfig, per_epoch: int) -> tuple[int, int, int]:
    """(optimizer steps, micro-batches, epochs). Accumulation may span epoch ends; the last partial group of an
    epoch-based run still makes one optimizer step."""
    accum = config.gradient_accumulation_steps
    if config.max_train_steps:
        micro = config.max_train_steps * accum
        return config.max_train_steps, micro, math.ceil(micro / per_epoch)
    micro = config.epochs * per_epoch
    return math.ceil(micro / accum), micro, config.epochs


def _check_buckets(hooks: SDHooks, dataset: Dataset) -> None:
    """Refuse image sizes the model cannot take before any training (AuraFlow: patch grid, position table)."""
    problems = sorted({p for p in (hooks.check_bucket(item.bucket) for item in dataset.items) if p})
    if problems:
        raise ValidationError("The dataset's image sizes do not fit this model: " + " ".join(problems) +
                              " Change the resolution or the bucket settings.")



def build_session(config: TrainingConfig, paths: TrainerPaths, events: EventSink) -> Session:
    """Build the run; `Session.config` is the config the run really uses (device of this rank, and a text encoder
    the family cannot train switched off)."""
    device = torch.device(config.device)
    dist = DistContext.from_env(device)
    if dist.enabled:
        device = torch.device(dist.device)
        config = dataclasses.replace(config, device=str(device))
    loaded, config = _load_model(config, paths, events)
    family = loaded.family
    pipe = loaded.pipeline
    prediction = loaded.prediction_type if config.prediction_type == "auto" else config.prediction_type
    hooks = hooks_for(family, pipe, prediction, flow_shift=config.flow_shift)
    dataset = scan_dataset(config)
    for note in dataset.notes:
        events.note(note)
    _check_buckets(hooks, dataset)
    torch.manual_seed(config.seed)
    network = create_network(pipe, family, config)
    for note in network.notes:
        events.note(note)
    _prepare_modules(pipe, config)
    groups = network.param_groups(config.learning_rate, config.text_encoder_lr)
    optimizer = create_optimizer(groups, config)
    per_epoch = dist.steps_per_epoch(steps_per_epoch(dataset, config.batch_size))
    total, micro, epochs = plan_steps(config, per_epoch)
    scheduler = create_scheduler(optimizer, config, total)
    amp_dtype, amp_note = autocast_dtype(config.mixed_precision, device)
    if amp_note:
        events.note(amp_note)
    model_hash = _model_hash(config, paths)
    cache_root = paths.cache_dir / "training"
    use_latents, use_text = _caching(config, events)
    latents = LatentCache(pipe.vae, model_hash, cache_root / "latents" if use_latents else None, device)
    texts = TextCache(lambda captions: hooks.encode_text(captions, device), model_hash,
                      cache_root / "text" if use_text else None)
    prompts = load_sample_prompts(config.sample_prompts, config.sample_prompt_text)
    generator = torch.Generator().manual_seed(config.seed + dist.rank)
    trainable = list(network.named_trainable().values())
    # fp16 gradients underflow without loss scaling (bf16 has fp32's range and needs none)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    return Session(config, loaded, family, hooks, dataset, network, optimizer, scheduler, latents, texts,
                   device, amp_dtype, generator, per_epoch, total, micro, epochs, prompts, model_hash,
                   use_latents, use_text, trainable, dist, scaler)


def _load_model(config: TrainingConfig, paths: TrainerPaths,
                events: EventSink) -> tuple[LoadedCheckpoint, TrainingConfig]:
    loaded = load_checkpoint(config.base_model, cache_dir=paths.cache_dir, device=config.device,
                             families=TRAINABLE_FAMILIES)
    if config.model_family not in ("auto", loaded.family):
        raise ValidationError(f"'{Path(config.base_model).name}' is a {loaded.family} model, but the config "
                              f"says {config.model_family}.")
    if loaded.family in _FROZEN_TEXT_ENCODER and config.train_text_encoder:
        if not config.train_unet:
            raise ValidationError(f"Only the transformer of a {loaded.family} model can be trained; enable it.")
        events.note(f"The text encoder of a {loaded.family} model is not trained; training the "
                    "transformer only.")
        config = dataclasses.replace(config, train_text_encoder=False)
    loaded.pipeline.set_progress_bar_config(disable=True)
    return loaded, config


def _model_hash(config: TrainingConfig, paths: TrainerPaths) -> str:
    path = Path(config.base_model)
    if path.is_file():
        return HashCache(paths.cache_dir / "hashes.json").sha256(path)
    parts = sorted(f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                   for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _caching(config: TrainingConfig, events: EventSink) -> tuple[bool, bool]:
    use_text = config.cache_text_embeddings
    if use_text and config.train_text_encoder:
        events.note("Text embeddings are not cached while the text encoder trains.")
        use_text = False
    if use_text and config.shuffle_caption:
        events.note("Text embeddings are not cached with shuffled captions (every epoch differs).")
        use_text = False
    return config.cache_latents, use_text


def _prepare_modules(pipe, config: TrainingConfig) -> None:
    pipe.vae.eval()
    denoiser_of(pipe).train(config.train_unet)
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            encoder.train(config.train_text_encoder)
    if config.gradient_checkpointing:
        denoiser_of(pipe).enable_gradient_checkpointing()
        if config.train_text_encoder:
            for name in ("text_encoder", "text_encoder_2"):
                encoder = getattr(pipe, name, None)
                if encoder is not None:
                    encoder.gradient_checkpointing_enable()
