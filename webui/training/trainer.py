"""The training loop: one loop for every family, with the family's differences in `families.py` hooks.

Why this shape: kohya's `train()` is 1,200 lines mixing setup, loop, saving and sampling; here setup builds a
`Session` (`session.py`), the loop only moves through (epoch, batch) positions, and each side task (save every N,
sample every N, resume state, events) is a small method. The position is always "the next batch to train", so a
resume continues exactly where an uninterrupted run would be (see `state.py`).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from webui.training import events as ev
from webui.training.config import TrainingConfig
from webui.training.dataset import CaptionPolicy, batch_captions, epoch_batches
from webui.training.events import EventSink
from webui.training.export import (
    epoch_file,
    prune_saved,
    step_file,
    training_metadata,
    write_network_file,
    write_preview,
)
from webui.training.families import TextConditioning, denoiser_of
from webui.training.optim import autocast
from webui.training.samples import generate_samples
from webui.training.session import Session, TrainerPaths, build_session
from webui.training.state import LoadedState, Progress, find_resume_dir, load_state, save_state

log = logging.getLogger(__name__)

STATES_KEPT = 2
SPEED_WINDOW = 20


@dataclass(frozen=True)
class TrainResult:
    status: str
    global_step: int
    total_steps: int
    final_file: Path | None = None
    saved: tuple[Path, ...] = ()
    losses: tuple[float, ...] = ()


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
        self.session: Session | None = None  # kept after `run` for tests and benchmarks (the trained pipeline)
        self._step = 0
        self._sampled_step = -1
        self._last_progress = Progress(0, 0, 0, 0, time.time())

    # ----- resume -----------------------------------------------------------------------------------------------
    def _start(self, s: Session) -> Progress:
        folder = find_resume_dir(self.paths.state_dir, self.config.resume)
        if folder is None:
            if self.config.resume:
                self.events.note("No saved training state found; starting from the beginning.")
            return Progress(0, 0, 0, 0, time.time())
        state = load_state(folder)
        self._restore(s, state)
        self.events.note(f"Resumed from {folder.name} (step {state.progress.global_step}).")
        return state.progress

    def _restore(self, s: Session, state: LoadedState) -> None:
        s.network.load_trainable_state(state.network)
        s.optimizer.load_state_dict(state.optimizer)
        s.scheduler.load_state_dict(state.scheduler)
        torch.set_rng_state(state.rng["torch"])
        s.generator.set_state(state.rng["noise"])
        if not s.dist.is_main:  # rank 0's noise stream is saved; other ranks continue on a fresh, distinct one
            s.generator.manual_seed(self.config.seed + 1_000_003 * s.dist.rank + state.progress.global_step)
        if "cuda" in state.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(state.rng["cuda"])

    def _save_state(self, s: Session, progress: Progress) -> Path | None:
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
    def _conditioning(self, s: Session, captions: list[str]) -> TextConditioning:
        if self.config.train_text_encoder:
            with autocast(s.device, s.amp_dtype):
                return s.hooks.encode_text(captions, s.device)
        return TextConditioning.stack([s.texts.get(c, s.use_text_cache) for c in captions]).to(s.device)

    def _micro_step(self, s: Session, batch: list[int], epoch: int, position: int) -> float:
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

    def _optimizer_step(self, s: Session) -> None:
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
    def _save_network(self, s: Session, path: Path, epoch: int, step: int, started_at: float) -> Path:
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

    def _sample(self, s: Session, progress: Progress, tag: str) -> Progress:
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

    def _after_step(self, s: Session, progress: Progress) -> Progress:
        config, step = self.config, progress.global_step
        is_last = step >= s.total_steps
        if config.save_every_n_steps and step % config.save_every_n_steps == 0 and not is_last:
            self._save_network(s, step_file(self.paths.output_dir, config.output_name, step), progress.epoch, step,
                               progress.started_at)
        if config.sample_every_n_steps and step % config.sample_every_n_steps == 0:
            progress = self._sample(s, progress, f"s{step:06d}")
        return progress

    def _after_epoch(self, s: Session, progress: Progress, finished_epoch: int) -> Progress:
        config = self.config
        is_last = finished_epoch >= s.total_epochs or progress.global_step >= s.total_steps
        if config.save_every_n_epochs and finished_epoch % config.save_every_n_epochs == 0 and not is_last:
            self._save_network(s, epoch_file(self.paths.output_dir, config.output_name, finished_epoch),
                               finished_epoch, progress.global_step, progress.started_at)
        if config.sample_every_n_epochs and finished_epoch % config.sample_every_n_epochs == 0:
            progress = self._sample(s, progress, f"e{finished_epoch:06d}")
        self.events.emit(ev.EPOCH, epoch=finished_epoch, total_epochs=s.total_epochs, step=progress.global_step)
        return progress

    def _emit_step(self, s: Session, progress: Progress, loss: float, step_seconds: float) -> None:
        self._step_times.append(step_seconds)
        per_step = sum(self._step_times) / len(self._step_times)
        self.losses.append(loss)
        self.events.emit(ev.STEP, step=progress.global_step, total_steps=s.total_steps,
                         epoch=min(progress.epoch + 1, s.total_epochs), total_epochs=s.total_epochs, loss=loss,
                         lr=float(s.scheduler.get_last_lr()[0]), its=1.0 / per_step if per_step else 0.0,
                         eta_s=per_step * (s.total_steps - progress.global_step))

    # ----- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        s = self.session = build_session(self.config, self.paths, self.events)
        self.config = s.config
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

    def _loop(self, s: Session, progress: Progress) -> str:
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

    def _step_and_side_tasks(self, s: Session, progress: Progress, loss: float, seconds: float,
                             batch_count: int) -> Progress:
        self._optimizer_step(s)
        loss = s.dist.mean(loss)
        progress = dataclasses.replace(progress, global_step=progress.global_step + 1)
        self._step = progress.global_step
        self._emit_step(s, progress, loss, seconds)
        progress = self._after_step(s, progress)
        return self._maybe_end_epoch(s, progress, batch_count)

    def _maybe_end_epoch(self, s: Session, progress: Progress, batch_count: int) -> Progress:
        if progress.batch_index < batch_count:
            return progress
        finished = progress.epoch + 1
        progress = dataclasses.replace(progress, epoch=finished, batch_index=0)
        return self._after_epoch(s, progress, finished)

    def _checkpoint_or_stop(self, s: Session, progress: Progress) -> bool:
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

    def _finish(self, s: Session) -> Path:
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
