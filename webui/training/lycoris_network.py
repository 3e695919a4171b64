"""LyCORIS networks (LoKr / LoHa / LoCon) via the `lycoris` library, from a SimpleTuner `lycoris_config`.

Why apart from LoRA: LyCORIS brings its own module wrappers, presets and file names. kohya-layout families save
with kohya names (`network_base.KohyaNamer`); AuraFlow saves LyCORIS's own `lycoris_<path>` names, what SimpleTuner
writes and `create_lycoris_from_weights` reads.

LyCORIS keeps its preset in class attributes of `LycorisNetwork` (global state shared by every network in the
process); `_lycoris_preset` sets it from library defaults + this job's preset only while one network is built
and puts the previous values back, so no job sees another's preset. Preset class names are mapped onto the classes
each model really has (`PRESET_CLASS_ALIASES`), and names that match nothing are reported.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from webui.training.config import LycorisSpec
from webui.training.families import DENOISERS
from webui.training.network_base import KohyaNamer, TrainingNetwork, metadata_number, saveable_tensor

LYCORIS_FILE_PREFIX = "lycoris"

# Preset class names as users write them (SimpleTuner's docs) -> the class names each model really has.
# Measured: a preset naming `FeedForward` is silently skipped on AuraFlow, whose class is AuraFlowFeedForward.
PRESET_CLASS_ALIASES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "auraflow": {"FeedForward": ("AuraFlowFeedForward",), "Attention": ("Attention",)},
    "text_encoder": {"Attention": ("CLIPAttention", "CLIPSdpaAttention"), "FeedForward": ("CLIPMLP",),
                     "MLP": ("CLIPMLP",)},
}
# `LycorisNetwork`'s class-level preset attributes and the library's defaults for them.
_LYCORIS_PRESET_DEFAULTS: Mapping[str, Any] = {
    "ENABLE_CONV": True,
    "TARGET_REPLACE_MODULE": ["Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm"],
    "TARGET_REPLACE_NAME": [],
    "LORA_PREFIX": "lycoris",
    "MODULE_ALGO_MAP": {},
    "NAME_ALGO_MAP": {},
    "USE_FNMATCH": False,
    "TARGET_EXCLUDE_NAME": [],
}
KOHYA_MODULE = "lycoris.kohya"


def _present_classes(model: torch.nn.Module) -> set[str]:
    return {type(module).__name__ for module in model.modules()}


def map_preset(preset: Mapping[str, Any], aliases: Mapping[str, tuple[str, ...]], present: set[str],
               component: str) -> tuple[dict[str, Any], list[str]]:
    """A preset's class names mapped onto the classes this component has (see `PRESET_CLASS_ALIASES`); names
    that match nothing are reported instead of being skipped silently."""
    notes: list[str] = []

    def classes(name: str) -> list[str]:
        if name in present:
            return [name]
        found = [alias for alias in aliases.get(name, ()) if alias in present]
        if not found:
            notes.append(f"LyCORIS preset class '{name}' matches no layer of the {component}.")
        return found or [name]

    mapped = dict(preset)
    if "target_module" in preset:
        mapped["target_module"] = list(dict.fromkeys(c for name in preset["target_module"] for c in classes(name)))
    if "module_algo_map" in preset:
        mapped["module_algo_map"] = {c: dict(conf) for name, conf in preset["module_algo_map"].items()
                                     for c in classes(name)}
    return mapped, list(dict.fromkeys(notes))


@contextlib.contextmanager
def _lycoris_preset(preset: Mapping[str, Any]) -> Iterator[None]:
    """`LycorisNetwork`'s class-level preset = library defaults + `preset`, for this block only."""
    from lycoris import LycorisNetwork

    saved = {attr: getattr(LycorisNetwork, attr) for attr in _LYCORIS_PRESET_DEFAULTS}
    try:
        for attr, value in _LYCORIS_PRESET_DEFAULTS.items():
            setattr(LycorisNetwork, attr, value.copy() if isinstance(value, list | dict) else value)
        LycorisNetwork.apply_preset(dict(preset))
        yield
    finally:
        for attr, value in saved.items():
            setattr(LycorisNetwork, attr, value)


class LycorisTrainingNetwork(TrainingNetwork):
    """LoKr / LoHa / LoCon from a SimpleTuner `lycoris_config`, one `LycorisNetwork` per trained component."""

    network_type = "lycoris"

    def __init__(self, pipe, family: str, spec: LycorisSpec, components: Sequence[str]):
        super().__init__(KohyaNamer(pipe, family))
        self.spec = spec
        self.networks: dict[str, Any] = {}
        self.paths: dict[str, dict[int, str]] = {}
        for component in components:
            model = getattr(pipe, component)
            alias_table = PRESET_CLASS_ALIASES.get(family if component in DENOISERS else "text_encoder", {})
            preset, notes = map_preset(spec.apply_preset, alias_table, _present_classes(model), component)
            self.notes += notes
            network = self._create(model, preset)
            if not network.loras:
                self.notes.append(f"The LyCORIS config adapts no layer of the {component}.")
                continue
            self.paths[component] = {id(module): path for path, module in model.named_modules()}
            network.apply_to()
            self.networks[component] = network

    def _create(self, model: torch.nn.Module, preset: Mapping[str, Any]):
        from lycoris import create_lycoris

        # create_lycoris applies a built-in preset of its own; of its keys only `enable_conv` takes effect, so the
        # built-in is picked to keep this job's enable_conv ("full" enables convs, "full-lin" does not).
        builtin = "full" if preset.get("enable_conv", True) else "full-lin"
        extra = {k: v for k, v in self.spec.extra.items() if k != "preset"}
        with _lycoris_preset(preset):
            return create_lycoris(model, self.spec.multiplier, self.spec.linear_dim, self.spec.linear_alpha,
                                  algo=self.spec.algo, preset=builtin, **extra)

    def _modules(self) -> Iterator[tuple[str, Any]]:
        for component, network in self.networks.items():
            for lora in network.loras:
                yield component, lora

    def named_trainable(self) -> dict[str, torch.nn.Parameter]:
        return {f"{component}:{lora.lora_name}.{name}": param
                for component, lora in self._modules() for name, param in lora.named_parameters()
                if param.requires_grad}

    def component_of(self, name: str) -> str:
        return name.split(":", 1)[0]

    def kohya_tensors(self) -> dict[str, torch.Tensor]:
        return self._tensors(self.namer.name)

    def native_tensors(self) -> dict[str, torch.Tensor]:
        """LyCORIS's own names (`lycoris_<path with _>`), as SimpleTuner saves them; the prefix is fixed here, not
        read from `LycorisNetwork.LORA_PREFIX` (class-level state another job may have changed)."""
        return self._tensors(lambda component, path: f"{LYCORIS_FILE_PREFIX}_{path}".replace(".", "_"))

    def _tensors(self, module_name: Callable[[str, str], str]) -> dict[str, torch.Tensor]:
        """Every module's tensors under `module_name(component, model path)`; a module without a known model path
        is left out with a note (it could not be loaded back by name)."""
        tensors: dict[str, torch.Tensor] = {}
        for component, lora in self._modules():
            path = self.paths[component].get(id(lora.org_module[0]))
            if path is None:
                self.notes.append(f"LyCORIS module {lora.lora_name} has no model path; not saved.")
                continue
            name = module_name(component, path)
            for key, value in lora.state_dict().items():
                tensors[f"{name}.{key}"] = saveable_tensor(value)
        return tensors

    def metadata(self) -> dict[str, str]:
        args = {"algo": self.spec.algo, **{k: v for k, v in self.spec.extra.items() if _is_jsonable(v)}}
        return {"ss_network_module": KOHYA_MODULE, "ss_network_dim": str(self.spec.linear_dim),
                "ss_network_alpha": metadata_number(self.spec.linear_alpha), "ss_network_args": json.dumps(args)}


def _is_jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
