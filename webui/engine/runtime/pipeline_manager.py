"""The one loaded model, shared by every tab and the API.

Why one object: switching checkpoint or VAE must load once and release the old weights; a failed load must
leave the previous model usable. Only the GPU executor's worker calls these methods, so they need no lock.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from webui.core.errors import ModelLoadError, NoModelLoadedError
from webui.engine.families.loading import FlowParts
from webui.engine.generation.run import ModelLabels
from webui.engine.models.hashing import HashCache
from webui.engine.models.loader import LoadedCheckpoint, load_checkpoint, load_vae
from webui.engine.models.registry import ModelEntry, ModelRegistry
from webui.engine.networks.adapters import AdapterSet
from webui.engine.runtime.devices import DeviceConfig, release_memory
from webui.engine.runtime.memory import MemoryOptimizer, MemoryOptions

log = logging.getLogger(__name__)

VAE_AUTOMATIC = "Automatic"
VAE_NONE = "None"


@dataclass
class ActiveModel:
    """The loaded checkpoint, its own VAE (kept to switch back) and the VAE currently in use."""

    entry: ModelEntry
    loaded: LoadedCheckpoint
    base_vae: object
    model_hash: str
    adapters: AdapterSet
    scheduler_config: dict
    vae_entry: ModelEntry | None = None
    vae_hash: str | None = None

    @property
    def pipeline(self):
        return self.loaded.pipeline

    @property
    def labels(self) -> ModelLabels:
        return ModelLabels(model_name=self.entry.name, model_hash=self.model_hash,
                           vae_name=self.vae_entry.title if self.vae_entry else None, vae_hash=self.vae_hash)


def model_bytes(pipe) -> int:
    """Bytes of all weights of a pipeline's torch components."""
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
    return total


class CheckpointCache:
    """Checkpoints kept in RAM after switching away (A1111's "Maximum checkpoints kept in RAM", which counts the
    loaded one too), also bounded by a byte budget. Cached pipelines live on the CPU; least recently used go
    first."""

    def __init__(self, limits: Callable[[], tuple[int, int]]):
        self._limits = limits  # -> (sd_checkpoints_limit, max bytes; 0 = no byte limit)
        self._models: OrderedDict[tuple[str, int], ActiveModel] = OrderedDict()
        self.hits = 0

    @staticmethod
    def _key(entry: ModelEntry) -> tuple[str, int]:
        return str(entry.path), entry.mtime_ns

    def take(self, entry: ModelEntry) -> ActiveModel | None:
        model = self._models.pop(self._key(entry), None)
        if model is not None:
            self.hits += 1
        return model

    def put(self, model: ActiveModel) -> None:
        limit, budget = self._limits()
        if limit <= 1:
            return
        model.pipeline.to("cpu")
        self._models[self._key(model.entry)] = model
        self._models.move_to_end(self._key(model.entry))
        while self._models and (len(self._models) > limit - 1 or
                                (budget and sum(model_bytes(m.pipeline) for m in self._models.values()) > budget)):
            self._models.popitem(last=False)

    def titles(self) -> list[str]:
        return [m.entry.title for m in self._models.values()]

    def clear(self) -> None:
        self._models.clear()


class PipelineManager:
    def __init__(self, registry: ModelRegistry, device: DeviceConfig, cache_dir: Path, hashes: HashCache,
                 limits: Callable[[], tuple[int, int]] | None = None, memory: MemoryOptimizer | None = None,
                 flow_parts: Callable[[], FlowParts] | None = None):
        self.registry = registry
        self.device = device
        self.cache_dir = cache_dir
        self.hashes = hashes
        self.active: ActiveModel | None = None
        self.parked = False  # the active model's weights wait in RAM (a training job has the device)
        self.vae_choice = VAE_AUTOMATIC
        self.load_count = 0
        self.cache = CheckpointCache(limits or (lambda: (1, 0)))
        self.memory = memory or MemoryOptimizer(MemoryOptions(device=str(device.device)))
        # Where a Flux transformer-only file finds its text encoders and VAE (folders + the user's choice).
        self.flow_parts = flow_parts or FlowParts

    def _hash(self, entry: ModelEntry) -> str:
        if entry.kind == "diffusers":
            return ""
        return self.hashes.model_hash(entry.path)

    def require(self) -> ActiveModel:
        if self.active is None:
            raise NoModelLoadedError("No checkpoint is loaded. Put a model in models/Stable-diffusion/, press "
                                     "refresh next to the checkpoint list and pick it.")
        return self.active

    def ensure(self, checkpoint: str | None, vae: str | None = None) -> ActiveModel:
        """Make `checkpoint` (a title or name; None = keep the current one or the first listed) and `vae` active."""
        if checkpoint is not None:
            entry = self.registry.find_checkpoint(checkpoint)
            if self.active is None or self.active.entry.path != entry.path or \
                    self.active.entry.mtime_ns != entry.mtime_ns:
                self.load(entry)
        elif self.active is None:
            listed = self.registry.checkpoints()
            if not listed:
                self.require()
            self.load(listed[0])
        if vae is not None and vae != self.vae_choice:
            self.set_vae(vae)
        active = self.require()
        if self.parked:
            self.memory.apply(active.pipeline, active.loaded.family)  # back onto the device, flags as before
            self.parked = False
        return active

    def park(self) -> bool:
        """Move the active model's weights to CPU RAM, out of a training job's way; the next `ensure` moves them
        back. Returns True when weights moved. Nothing to do on a CPU device or with an offload flag (the
        weights already live in RAM between uses)."""
        if self.active is None or self.parked or self.memory.device.type == "cpu" or self.memory.offloading():
            return False
        pipe = self.active.pipeline
        self.memory.detach(pipe)
        pipe.to("cpu")
        release_memory(self.device.device)
        self.parked = True
        return True

    def load(self, entry: ModelEntry) -> ActiveModel:
        """Switch to a checkpoint: from the RAM cache when it is there, else from disk. On failure the previous
        model stays loaded and the error propagates."""
        new = self.cache.take(entry)
        if new is None:
            log.info("Loading checkpoint %s", entry.path)
            loaded = load_checkpoint(entry.path, cache_dir=self.cache_dir, device=self.memory.load_device(),
                                     dtype=self.device.dtype, parts=self.flow_parts())
            pipe = loaded.pipeline
            if hasattr(pipe, "safety_checker"):
                pipe.safety_checker = None
            pipe.set_progress_bar_config(disable=True)
            new = ActiveModel(entry=entry, loaded=loaded, base_vae=pipe.vae, model_hash=self._hash(entry),
                              adapters=AdapterSet(pipe), scheduler_config=dict(pipe.scheduler.config))
            self.load_count += 1
        else:
            log.info("Checkpoint %s taken from the RAM cache", entry.path)
            new.pipeline.to(self.memory.load_device())
        old, self.active = self.active, new
        if old is not None:
            old.adapters.restore()  # the cache keeps base weights only
            self.memory.detach(old.pipeline)
            self.cache.put(old)
        del old
        release_memory(self.device.device)
        try:
            self._apply_vae(self.vae_choice)
        except ModelLoadError as exc:
            log.warning("%s Using the checkpoint's own VAE.", exc)
            self.vae_choice = VAE_AUTOMATIC
            self._apply_vae(VAE_AUTOMATIC)
        self.memory.apply(new.pipeline, new.loaded.family)
        self.parked = False
        return new

    def set_vae(self, choice: str) -> None:
        """'Automatic' (a same-named VAE file, else the checkpoint's own), 'None' (the checkpoint's own) or a
        file in models/VAE. On failure the VAE in use stays."""
        if self.active is not None:
            self._apply_vae(choice)
            self.memory.apply(self.active.pipeline, self.active.loaded.family)
            self.parked = False
        self.vae_choice = choice

    def _apply_vae(self, choice: str) -> None:
        active = self.require()
        entry: ModelEntry | None
        if choice == VAE_NONE:
            entry = None
        elif choice == VAE_AUTOMATIC:
            entry = self.registry.vae_for_checkpoint(active.entry)
        else:
            entry = self.registry.find_vae(choice)
        if entry is None:
            active.pipeline.vae = active.base_vae
            active.vae_entry, active.vae_hash = None, None
            return
        if active.vae_entry is not None and active.vae_entry.path == entry.path:
            return
        vae = load_vae(entry.path, family=active.loaded.family, cache_dir=self.cache_dir, dtype=self.device.dtype)
        base = active.base_vae.config
        if tuple(vae.config.block_out_channels) != tuple(base.block_out_channels) or \
                vae.config.latent_channels != base.latent_channels:
            raise ModelLoadError(f"The VAE '{entry.title}' does not fit the checkpoint '{active.entry.title}' "
                                 f"(a VAE for another model family?).")
        active.pipeline.vae = vae.to(self.device.device)
        active.vae_entry, active.vae_hash = entry, self._hash(entry)
