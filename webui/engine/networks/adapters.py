"""Apply LoRA / LyCORIS files to a loaded pipeline by merging weight deltas, and undo them exactly.

Why merge + copy-back: a merged adapter costs nothing per step (no hooks, no wrappers left in the model); the
touched weights are copied once before the first merge and copied back to remove adapters, which restores the
base model bit for bit (measured: diffusers' fuse/unfuse drifts by ~3e-8, and lycoris' on-the-fly restore does
not restore on CPU). The engine asks for a set of (file, weights); `AdapterSet.apply` works out the difference
with the current set and does no work at all when nothing changed.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from webui.core.errors import ModelLoadError
from webui.engine.models.ldm_convert import unet_key_map
from webui.engine.models.state_dict import load_state_dict
from webui.engine.networks.adapter_family import adapter_family, family_label, fits_family
from webui.engine.networks.flow_layouts import (
    COMFY_TEXT_PREFIXES,
    DENOISER_FAMILIES,
    KOHYA_TEXT_PREFIXES,
    denoiser_names,
    original_layout_names,
)
from webui.engine.networks.formats import ModuleAdapter, group_by_module
from webui.engine.runtime.offload_store import stored_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterRequest:
    """One `<lora:name:te:unet>` resolved to a file. `key` identifies the file version (hash)."""

    name: str
    path: Path
    key: str
    te_weight: float = 1.0
    unet_weight: float = 1.0


DENOISER_COMPONENTS = ("unet", "transformer")


@dataclass(frozen=True)
class Target:
    """The layer an adapter module changes: one Linear/Conv, or for a name from a model's original fused layout
    (Flux's BFL `img_attn.qkv`) several layers whose weights stack by rows into the fused one (`also` follow
    `module`; `swap_halves`: the original's two row halves are in the other order, see `flow_layouts.py`)."""

    component: str  # "unet", "transformer", "text_encoder" or "text_encoder_2"
    module: torch.nn.Module
    path: str
    also: tuple[torch.nn.Module, ...] = ()
    swap_halves: bool = False

    @property
    def modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.module, *self.also)

    def shape(self) -> torch.Size:
        """The shape of the weight the adapter's delta is for (the fused one for several layers)."""
        shape = self.module.weight.shape
        if not self.also:
            return shape
        return torch.Size((sum(m.weight.shape[0] for m in self.modules), *shape[1:]))

    def split(self, delta: torch.Tensor) -> list[tuple[torch.nn.Module, torch.Tensor]]:
        """Each layer with its rows of a delta shaped `shape()`."""
        if self.swap_halves:
            first, second = delta.chunk(2, dim=0)
            delta = torch.cat([second, first], dim=0)
        rows = [m.weight.shape[0] for m in self.modules]
        return list(zip(self.modules, delta.split(rows, dim=0), strict=True))


def _underscored(path: str) -> str:
    return path.replace(".", "_")


def _is_adaptable(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear | torch.nn.Conv2d)


def _unet_names(unet) -> dict[str, Target]:
    """kohya names UNet modules by their diffusers path (SD1/SD2) or their LDM path (SDXL); PEFT and diffusers
    files use dotted paths under `unet.`; SimpleTuner writes `lycoris_` + path."""
    index: dict[str, Target] = {}
    weight_keys = [k for k, _ in unet.named_parameters() if k.endswith(".weight")]
    try:
        ldm = unet_key_map(weight_keys, unet.config)
    except ValueError:
        ldm = {}
    modules = dict(unet.named_modules())
    for key in weight_keys:
        path = key[: -len(".weight")]
        module = modules[path]
        if not _is_adaptable(module):
            continue
        target = Target("unet", module, path)
        names = {f"lora_unet_{_underscored(path)}", f"lycoris_{_underscored(path)}", f"unet.{path}", path}
        if key in ldm:
            names.add(f"lora_unet_{_underscored(ldm[key][: -len('.weight')])}")
        for name in names:
            index.setdefault(name, target)
    return index


def _transformer_names(transformer) -> dict[str, Target]:
    """A flow transformer's layers under every trainer's names (`flow_layouts.py`), including names from the
    model's original fused layout, which target several layers."""
    index: dict[str, Target] = {}
    modules = dict(transformer.named_modules())
    for path, module in modules.items():
        if _is_adaptable(module):
            target = Target("transformer", module, path)
            for name in denoiser_names(path):
                index.setdefault(name, target)
    for name, fused in original_layout_names(transformer).items():
        parts = [modules.get(path) for path in fused.paths]
        if any(part is None or not isinstance(part, torch.nn.Linear) for part in parts):
            continue  # a pruned or variant model without some of these layers
        if len({part.weight.shape[1:] for part in parts}) != 1:
            continue
        index.setdefault(name, Target("transformer", parts[0], fused.paths[0], tuple(parts[1:]), fused.swap_halves))
    return index


def _text_prefixes(pipe, denoiser) -> Mapping[str, str]:
    special = KOHYA_TEXT_PREFIXES.get(type(denoiser).__name__)
    if special is not None:
        return special
    is_sdxl = getattr(pipe, "text_encoder_2", None) is not None
    return {"text_encoder": "lora_te1" if is_sdxl else "lora_te", "text_encoder_2": "lora_te2"}


def _encoder_names(pipe, denoiser) -> dict[str, Target]:
    """kohya names text-encoder modules by the HF path with `text_model.` (absent in transformers 5's
    CLIPTextModel, so both are indexed); PEFT/diffusers files use `text_encoder.` + path; ComfyUI its own."""
    index: dict[str, Target] = {}
    kohya_prefixes = _text_prefixes(pipe, denoiser)
    comfy_prefixes = COMFY_TEXT_PREFIXES.get(type(denoiser).__name__, {})
    for component in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, component, None)
        if encoder is None:
            continue
        kohya = kohya_prefixes.get(component)
        for path, module in encoder.named_modules():
            if not _is_adaptable(module):
                continue
            target = Target(component, module, path)
            bare = path.removeprefix("text_model.")
            for variant in (bare, f"text_model.{bare}"):
                names = [f"{component}.{variant}"] + ([f"{kohya}_{_underscored(variant)}"] if kohya else [])
                if component in comfy_prefixes:
                    names.append(comfy_prefixes[component] + variant)
                for name in names:
                    index.setdefault(name, target)
    return index


def build_module_index(pipe) -> dict[str, Target]:
    """Every name an adapter file may use for a Linear/Conv weight of this pipeline -> the layer(s) it changes."""
    unet = getattr(pipe, "unet", None)
    denoiser = unet if unet is not None else pipe.transformer
    index = _unet_names(unet) if unet is not None else _transformer_names(denoiser)
    for name, target in _encoder_names(pipe, denoiser).items():
        index.setdefault(name, target)
    return index


@dataclass(frozen=True)
class ParsedAdapter:
    """An adapter file resolved against one pipeline: (target, per-module adapter) pairs."""

    targets: tuple[tuple[Target, ModuleAdapter], ...]
    unmatched: tuple[str, ...]


def pipeline_family(pipe) -> str | None:
    """The adapter family group of a loaded pipeline, from its denoiser's class (None: not one we know)."""
    unet = getattr(pipe, "unet", None)
    denoiser = unet if unet is not None else getattr(pipe, "transformer", None)
    return DENOISER_FAMILIES.get(type(denoiser).__name__)


def parse_adapter(path: Path, index: dict[str, Target], model_family: str | None = None) -> ParsedAdapter:
    """Match a file's modules to this pipeline's layers. A file whose names say it is for another family than
    `model_family` is refused with a message naming both, before any shape is compared."""
    state = load_state_dict(path)
    file_family = adapter_family(state, {})
    if not fits_family(file_family, model_family):
        raise ModelLoadError(f"'{path.name}' is made for {family_label(file_family)} and the loaded model is "
                             f"{family_label(model_family)}: pick a LoRA made for this model.")
    adapters, unknown = group_by_module(state)
    if not adapters:
        raise ModelLoadError(f"'{path.name}' is not a LoRA/LyCORIS file (no lora_down/lora_up, hada_*, lokr_* "
                             f"or diff tensors).")
    matched, unmatched = [], list(unknown)
    for adapter in adapters:
        name = adapter.module.removeprefix("base_model.model.")
        target = index.get(name)
        if target is None:
            unmatched.append(adapter.module)
        elif not adapter.fits(target.shape()):
            raise ModelLoadError(f"'{path.name}' does not fit this model: {adapter.module} has other sizes than "
                                 f"the model's layer (a file for another model family?).")
        else:
            matched.append((target, adapter))
    if not matched:
        raise ModelLoadError(f"'{path.name}' matches no layer of this model: it is for another model family "
                             f"(first unmatched key: {unmatched[0]}).")
    return ParsedAdapter(tuple(matched), tuple(unmatched))


class AdapterSet:
    """The adapters merged into one pipeline's weights. Owned by the pipeline manager; used by the single GPU
    worker only (no locking)."""

    def __init__(self, pipe):
        self.pipe = pipe
        self._index: dict[str, Target] | None = None
        self._backup: dict[int, tuple[torch.nn.Module, torch.Tensor]] = {}
        self._current: tuple[AdapterRequest, ...] = ()
        self._parsed: dict[str, ParsedAdapter] = {}
        self.merge_calls = 0

    @property
    def current(self) -> tuple[AdapterRequest, ...]:
        return self._current

    def _module_index(self) -> dict[str, Target]:
        if self._index is None:
            self._index = build_module_index(self.pipe)
        return self._index

    def _parse(self, request: AdapterRequest) -> ParsedAdapter:
        parsed = self._parsed.get(request.key)
        if parsed is None:
            parsed = parse_adapter(request.path, self._module_index(), pipeline_family(self.pipe))
            self._parsed[request.key] = parsed
        return parsed

    def apply(self, wanted: Sequence[AdapterRequest]) -> list[str]:
        """Make exactly `wanted` active; returns notes for the user. A file that cannot be used (corrupt, another
        model family) is skipped with a note, never a crash, and never half-applied."""
        notes: list[str] = []
        parsed = []
        for request in wanted:
            if request.te_weight == 0 and request.unet_weight == 0:
                continue
            try:
                parsed.append((request, self._parse(request)))
            except ModelLoadError as exc:
                notes.append(f"LoRA '{request.name}' skipped: {exc}")
        wanted = tuple(request for request, _ in parsed)
        if wanted == self._current:
            return notes
        current = self._current
        if wanted[: len(current)] == current:
            new = parsed[len(current):]  # only additions: merge just those on top
        else:
            self.restore()
            new = parsed
        for request, adapter in new:
            try:
                self._merge(request, adapter)
            except (ModelLoadError, RuntimeError) as exc:  # never leave a half-merged set behind
                self.restore()
                notes.append(f"LoRA '{request.name}' could not be applied; all LoRAs were removed: {exc}")
                return notes
            if adapter.unmatched:
                notes.append(f"LoRA '{request.name}': {len(adapter.unmatched)} keys match no layer of this model "
                             f"(e.g. {adapter.unmatched[0]}).")
        self._current = wanted
        return notes

    def _merge(self, request: AdapterRequest, adapter: ParsedAdapter) -> None:
        self.merge_calls += 1
        with torch.no_grad():
            for target, module_adapter in adapter.targets:
                is_denoiser = target.component in DENOISER_COMPONENTS
                multiplier = request.unet_weight if is_denoiser else request.te_weight
                if multiplier == 0:
                    continue
                delta = module_adapter.delta(target.shape())
                for module, part in target.split(delta):
                    weight = stored_tensor(module)
                    if id(module) not in self._backup:
                        self._backup[id(module)] = (module, weight.detach().clone())
                    weight.copy_((weight.to(torch.float32) + multiplier * part.to(weight.device)).to(weight.dtype))

    def originals(self) -> dict[int, torch.Tensor]:
        """The checkpoint's weights of the modules this set changed, by `id(module)`: what a ControlNet-LoRA is
        built on, whatever LoRAs the last prompt merged."""
        return {key: original for key, (_, original) in self._backup.items()}

    def restore(self) -> None:
        """Copy every touched weight back: the base model, bit for bit."""
        with torch.no_grad():
            for module, original in self._backup.values():
                stored_tensor(module).copy_(original)
        self._backup.clear()
        self._current = ()

    def forget_files(self) -> None:
        """Drop parsed files (after a refresh of the LoRA folders)."""
        self._parsed.clear()
