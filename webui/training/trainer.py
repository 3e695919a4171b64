"""The training loop: one loop for every family, with the family's differences in `families.py` hooks.

Why this shape: kohya's `train()` is 1,200 lines mixing setup, loop, saving and sampling; here setup builds a
`_Session`, the loop only moves through (epoch, batch) positions, and each side task (save every N, sample
every N, resume state, events) is a small method. The position is always "the next batch to train", so a resume
continues exactly where an uninterrupted run would be (see `state.py`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from webui.core.errors import ValidationError
from webui.engine.models.detection import AURAFLOW, GENERATION_FAMILIES
from webui.engine.models.hashing import HashCache
from webui.engine.models.loader import LoadedCheckpoint, load_checkpoint
from webui.training import events as ev
from webui.training.cache import LatentCache, TextCache
from webui.training.config import TrainingConfig
from webui.training.dataset import CaptionPolicy, Dataset, batch_captions, epoch_batches, scan_dataset, steps_per_epoch
from webui.training.distributed import DistContext
from webui.training.events import EventSink
from webui.training.export import (
    epoch_file,
    prune_saved,
    step_file,
    training_metadata,
    write_network_file,
    write_preview,
)
from webui.training.families import SDHooks, TextConditioning, denoiser_of, hooks_for
from webui.training.networks import TrainingNetwork, create_network
from webui.training.optim import autocast, autocast_dtype, create_optimizer, create_scheduler
from webui.training.samples import SamplePrompt, generate_samples, load_sample_prompts
from webui.training.state import LoadedState, Progress, find_resume_dir, load_state, save_state

log = logging.getLogger(__name__)

STATES_KEPT = 2
SPEED_WINDOW = 20
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


@dataclass(frozen=True)
class TrainResult:
    status: str
    global_step: int
    total_steps: int
    final_file: Path | None = None
    saved: tuple[Path, ...] = ()
    losses: tuple[float, ...] = ()


@dataclass
class _Session:
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


class Trainer:
    """Runs one job: `Trainer(config, paths, events, should_stop).run()`."""

    def __init__(self, config: TrainingConfig, paths: TrainerPaths, events: EventSink,
                 should_stop=lambda: False):
        self.config = config.validate()
        self.paths = paths
        self.events = events
        self.should_stop = should_stop
        self.saved: list[Path] = []
        self.losses: list[float] = []
        self._step_times: deque[float] = deque(maxlen=SPEED_WINDOW)
        self.session: _Session | None = None  # kept after `run` for tests and benchmarks (the trained pipeline)
        self._step = 0
        self._sampled_step = -1
        self._last_progress = Progress(0, 0, 0, 0, time.time())

    # ----- setup ------------------------------------------------------------------------------------------------
    def _load_model(self) -> tuple[LoadedCheckpoint, str]:
        config = self.config
        loaded = load_checkpoint(config.base_model, cache_dir=self.paths.cache_dir, device=config.device,
                                 families=TRAINABLE_FAMILIES)
        if config.model_family not in ("auto", loaded.family):
            raise ValidationError(f"'{Path(config.base_model).name}' is a {loaded.family} model, but the config "
                                  f"says {config.model_family}.")
        if loaded.family in _FROZEN_TEXT_ENCODER and config.train_text_encoder:
            if not config.train_unet:
                raise ValidationError(f"Only the transformer of a {loaded.family} model can be trained; enable it.")
            self.events.note(f"The text encoder of a {loaded.family} model is not trained; training the "
                             "transformer only.")
            self.config = dataclasses.replace(config, train_text_encoder=False)
        loaded.pipeline.set_progress_bar_config(disable=True)
        return loaded, loaded.family

    def _model_hash(self) -> str:
        path = Path(self.config.base_model)
        if path.is_file():
            return HashCache(self.paths.cache_dir / "hashes.json").sha256(path)
        parts = sorted(f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                       for p in path.rglob("*") if p.is_file())
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _caching(self) -> tuple[bool, bool]:
        config = self.config
        use_text = config.cache_text_embeddings
        if use_text and config.train_text_encoder:
            self.events.note("Text embeddings are not cached while the text encoder trains.")
            use_text = False
        if use_text and config.shuffle_caption:
            self.events.note("Text embeddings are not cached with shuffled captions (every epoch differs).")
            use_text = False
        return config.cache_latents, use_text

    def _setup(self) -> _Session:
        config = self.config
        device = torch.device(config.device)
        dist = DistContext.from_env(device)
        if dist.enabled:
            device = torch.device(dist.device)
            self.config = config = dataclasses.replace(config, device=str(device))
        loaded, family = self._load_model()
        config = self.config
        pipe = loaded.pipeline
        prediction = loaded.prediction_type if config.prediction_type == "auto" else config.prediction_type
        hooks = hooks_for(family, pipe, prediction, flow_shift=config.flow_shift)
        dataset = scan_dataset(config)
        for note in dataset.notes:
            self.events.note(note)
        _check_buckets(hooks, dataset)
        torch.manual_seed(config.seed)
        network = create_network(pipe, family, config)
        for note in network.notes:
            self.events.note(note)
        self._prepare_modules(pipe, network)
        groups = network.param_groups(config.learning_rate, config.text_encoder_lr)
        optimizer = create_optimizer(groups, config)
        per_epoch = dist.steps_per_epoch(steps_per_epoch(dataset, config.batch_size))
        total, micro, epochs = plan_steps(config, per_epoch)
        scheduler = create_scheduler(optimizer, config, total)
        amp_dtype, amp_note = autocast_dtype(config.mixed_precision, device)
        if amp_note:
            self.events.note(amp_note)
        model_hash = self._model_hash()
        cache_root = self.paths.cache_dir / "training"
        use_latents, use_text = self._caching()
        latents = LatentCache(pipe.vae, model_hash, cache_root / "latents" if use_latents else None, device)
        texts = TextCache(lambda captions: hooks.encode_text(captions, device), model_hash,
                          cache_root / "text" if use_text else None)
        prompts = load_sample_prompts(config.sample_prompts, config.sample_prompt_text)
        generator = torch.Generator().manual_seed(config.seed + dist.rank)
        trainable = list(network.named_trainable().values())
        # fp16 gradients underflow without loss scaling (bf16 has fp32's range and needs none)
        scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        return _Session(config, loaded, family, hooks, dataset, network, optimizer, scheduler, latents, texts,
                        device, amp_dtype, generator, per_epoch, total, micro, epochs, prompts, model_hash,
                        use_latents, use_text, trainable, dist, scaler)

    def _prepare_modules(self, pipe, network: TrainingNetwork) -> None:
        config = self.config
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

    # ----- resume -----------------------------------------------------------------------------------------------
    def _start(self, s: _Session) -> Progress:
        folder = find_resume_dir(self.paths.state_dir, self.config.resume)
        if folder is None:
            if self.config.resume:
                self.events.note("No saved training state found; starting from the beginning.")
            return Progress(0, 0, 0, 0, time.time())
        state = load_state(folder)
        self._restore(s, state)
        self.events.note(f"Resumed from {folder.name} (step {state.progress.global_step}).")
        return state.progress

    def _restore(self, s: _Session, state: LoadedState) -> None:
        s.network.load_trainable_state(state.network)
        s.optimizer.load_state_dict(state.optimizer)
        s.scheduler.load_state_dict(state.scheduler)
        torch.set_rng_state(state.rng["torch"])
        s.generator.set_state(state.rng["noise"])
        if not s.dist.is_main:  # rank 0's noise stream is saved; other ranks continue on a fresh, distinct one
            s.generator.manual_seed(self.config.seed + 1_000_003 * s.dist.rank + state.progress.global_step)
        if "cuda" in state.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(state.rng["cuda"])

    def _save_state(self, s: _Session, progress: Progress) -> Path | None:
        if not s.dist.is_main:
            return None
        rng = {"torch": torch.get_rng_state(), "noise": s.generator.get_state()}
        if s.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        folder = save_state(self.paths.state_dir, progress, s.network.trainable_state(), s.optimizer, s.scheduler,
                            rng, keep=STATES_KEPT)
        self.events.emit(ev.STATE, path=str(folder), step=progress.global_step)
        return folder

    # ----- one step ---------------------------------------------------------------------------------------------
    def _conditioning(self, s: _Session, captions: list[str]) -> TextConditioning:
        if self.config.train_text_encoder:
            with autocast(s.device, s.amp_dtype):
                return s.hooks.encode_text(captions, s.device)
        return TextConditioning.stack([s.texts.get(c, s.use_text_cache) for c in captions]).to(s.device)

    def _micro_step(self, s: _Session, batch: list[int], epoch: int, position: int) -> float:
        items = [s.dataset.items[i] for i in batch]
        latents = torch.stack([s.latents.get(item, s.use_latent_cache) for item in items]).to(s.device)
        captions = batch_captions(s.dataset, batch, CaptionPolicy.from_config(self.config), self.config.seed,
                                  epoch, position)
        cond = self._conditioning(s, captions)
        noise = torch.randn(latents.shape, generator=s.generator).to(s.device)
        timesteps = s.hooks.sample_timesteps(len(batch), s.generator)
        noisy, target = s.hooks.noisy_and_target(latents, noise, timesteps)
        with autocast(s.device, s.amp_dtype):
            prediction = s.hooks.predict(denoiser_of(s.loaded.pipeline), noisy, timesteps.to(s.device), cond,
                                         items[0].bucket)
        loss = F.mse_loss(prediction.float(), target.float())
        scaled = loss / self.config.gradient_accumulation_steps
        (s.scaler.scale(scaled) if s.scaler is not None else scaled).backward()
        return float(loss.detach())

    def _optimizer_step(self, s: _Session) -> None:
        s.dist.average_gradients(s.trainable)
        if s.scaler is not None:
            s.scaler.unscale_(s.optimizer)
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(s.trainable, self.config.max_grad_norm)
        if s.scaler is not None:
            s.scaler.step(s.optimizer)
            s.scaler.update()
        else:
            s.optimizer.step()
        s.scheduler.step()
        s.optimizer.zero_grad(set_to_none=True)

    # ----- side tasks -------------------------------------------------------------------------------------------
    def _save_network(self, s: _Session, path: Path, epoch: int, step: int, started_at: float) -> Path:
        if not s.dist.is_main:
            return path
        meta = training_metadata(self.config, s.family, s.dataset, s.network.metadata(), epoch=epoch, step=step,
                                 started_at=started_at, base_model_hash=s.model_hash[:10])
        write_network_file(path, s.network.file_tensors(), meta)
        self.saved.append(path)
        for removed in prune_saved(self.paths.output_dir, self.config.output_name, self.config.save_last_k):
            self.events.emit(ev.SAVED, path=str(removed), removed=True)
        self.events.emit(ev.SAVED, path=str(path), epoch=epoch, step=step)
        return path

    def _sample(self, s: _Session, progress: Progress, tag: str) -> Progress:
        if not s.prompts or not s.dist.is_main:
            return progress
        pipe = s.loaded.pipeline
        denoiser = denoiser_of(pipe)
        was_training = denoiser.training
        denoiser.eval()
        try:
            paths = generate_samples(pipe, s.prompts, self.paths.samples_dir, tag, self.config.resolution, s.device)
        finally:
            denoiser.train(was_training)
        self._sampled_step = progress.global_step
        self.events.emit(ev.SAMPLE, paths=[str(p) for p in paths], step=progress.global_step, epoch=progress.epoch)
        return dataclasses.replace(progress, last_sample=str(paths[-1]))

    def _after_step(self, s: _Session, progress: Progress) -> Progress:
        config, step = self.config, progress.global_step
        is_last = step >= s.total_steps
        if config.save_every_n_steps and step % config.save_every_n_steps == 0 and not is_last:
            self._save_network(s, step_file(self.paths.output_dir, config.output_name, step), progress.epoch, step,
                               progress.started_at)
        if config.sample_every_n_steps and step % config.sample_every_n_steps == 0:
            progress = self._sample(s, progress, f"s{step:06d}")
        return progress

    def _after_epoch(self, s: _Session, progress: Progress, finished_epoch: int) -> Progress:
        config = self.config
        is_last = finished_epoch >= s.total_epochs or progress.global_step >= s.total_steps
        if config.save_every_n_epochs and finished_epoch % config.save_every_n_epochs == 0 and not is_last:
            self._save_network(s, epoch_file(self.paths.output_dir, config.output_name, finished_epoch),
                               finished_epoch, progress.global_step, progress.started_at)
        if config.sample_every_n_epochs and finished_epoch % config.sample_every_n_epochs == 0:
            progress = self._sample(s, progress, f"e{finished_epoch:06d}")
        self.events.emit(ev.EPOCH, epoch=finished_epoch, total_epochs=s.total_epochs, step=progress.global_step)
        return progress

    def _emit_step(self, s: _Session, progress: Progress, loss: float, step_seconds: float) -> None:
        self._step_times.append(step_seconds)
        per_step = sum(self._step_times) / len(self._step_times)
        self.losses.append(loss)
        self.events.emit(ev.STEP, step=progress.global_step, total_steps=s.total_steps,
                         epoch=min(progress.epoch + 1, s.total_epochs), total_epochs=s.total_epochs, loss=loss,
                         lr=float(s.scheduler.get_last_lr()[0]), its=1.0 / per_step if per_step else 0.0,
                         eta_s=per_step * (s.total_steps - progress.global_step))

    # ----- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        s = self.session = self._setup()
        progress = self._start(s)
        self.events.emit(ev.STARTED, total_steps=s.total_steps, total_epochs=s.total_epochs,
                         steps_per_epoch=s.steps_per_epoch, images=len(s.dataset.items), family=s.family,
                         resumed_at=progress.global_step, output_dir=str(self.paths.output_dir))
        try:
            status = self._loop(s, progress)
            final = self._finish(s) if status == ev.DONE else None
        finally:
            s.dist.close()
        return TrainResult(status, self._step, s.total_steps, final, tuple(self.saved), tuple(self.losses))

    def _loop(self, s: _Session, progress: Progress) -> str:
        pending: list[float] = []
        tick = time.perf_counter()
        self._step = progress.global_step
        while progress.global_step < s.total_steps:
            epoch = progress.epoch
            batches = s.dist.shard(epoch_batches(s.dataset, self.config.batch_size, self.config.seed, epoch))
            while progress.epoch == epoch and progress.global_step < s.total_steps:
                if progress.batch_index >= len(batches):  # the epoch ended inside an accumulation group
                    progress = self._maybe_end_epoch(s, progress, len(batches))
                    continue
                pending.append(self._micro_step(s, batches[progress.batch_index], epoch, progress.batch_index))
                progress = dataclasses.replace(progress, batch_index=progress.batch_index + 1,
                                               micro_step=progress.micro_step + 1)
                if len(pending) < self.config.gradient_accumulation_steps \
                        and progress.micro_step < s.total_micro_steps:
                    continue
                progress = self._step_and_side_tasks(s, progress, sum(pending) / len(pending),
                                                     time.perf_counter() - tick, len(batches))
                pending = []
                if self._checkpoint_or_stop(s, progress):
                    return ev.CANCELLED
                tick = time.perf_counter()
        self._last_progress = progress
        return ev.DONE

    def _step_and_side_tasks(self, s: _Session, progress: Progress, loss: float, seconds: float,
                             batch_count: int) -> Progress:
        self._optimizer_step(s)
        loss = s.dist.mean(loss)
        progress = dataclasses.replace(progress, global_step=progress.global_step + 1)
        self._step = progress.global_step
        self._emit_step(s, progress, loss, seconds)
        progress = self._after_step(s, progress)
        return self._maybe_end_epoch(s, progress, batch_count)

    def _maybe_end_epoch(self, s: _Session, progress: Progress, batch_count: int) -> Progress:
        if progress.batch_index < batch_count:
            return progress
        finished = progress.epoch + 1
        progress = dataclasses.replace(progress, epoch=finished, batch_index=0)
        return self._after_epoch(s, progress, finished)

    def _checkpoint_or_stop(self, s: _Session, progress: Progress) -> bool:
        """Save resume state every N steps and on a cancel request; True when the run must stop now."""
        config = self.config
        stop = s.dist.any(self.should_stop()) and progress.global_step < s.total_steps
        every = config.save_state_every_n_steps
        if stop or (every and progress.global_step % every == 0 and progress.global_step < s.total_steps):
            self._save_state(s, progress)
        if stop:
            self.events.emit(ev.CANCELLED, step=progress.global_step, total_steps=s.total_steps,
                             resumable=True)
        return stop

    def _finish(self, s: _Session) -> Path:
        progress = self._last_progress
        sampling = self.config.sample_every_n_steps or self.config.sample_every_n_epochs
        if s.prompts and sampling and self._sampled_step != progress.global_step:
            progress = self._sample(s, progress, "final")
        final = self.paths.output_dir / f"{self.config.output_name}.safetensors"
        self._save_network(s, final, progress.epoch, progress.global_step, progress.started_at)
        preview = write_preview(final, Path(progress.last_sample) if progress.last_sample else None)
        self.events.emit(ev.DONE, final_file=str(final), preview=str(preview) if preview else None,
                         step=progress.global_step, saved=[str(p) for p in self.saved])
        return final
