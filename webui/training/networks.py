"""Trainable networks attached to a pipeline: PEFT LoRA, and LyCORIS (LoKr / LoHa / LoCon) via `lycoris`.

Why both speak kohya names: the file a job saves must load in A1111 (and in our own `AdapterSet`) without any
conversion, so every adapter module is named from the model path it wraps (`lora_unet_*`, `lora_te_*`; SDXL:
LDM UNet paths and `lora_te1_`/`lora_te2_`) and carries its real `alpha` (diffusers' converter writes the rank
there, and names the SD1 text encoder `lora_te1_encoder_...` under transformers 5: both wrong for A1111).

AuraFlow has no kohya/A1111 layout (neither trains nor runs it), so its files use what its users load them with
(`FILE_LAYOUTS`): LoRA as PEFT/diffusers keys `transformer.<path>.lora_A/lora_B.weight` (read by
`AuraFlowPipeline.load_lora_weights` and ComfyUI), with alpha / rank folded into `lora_B` because those readers
take alpha = rank; LyCORIS with LyCORIS's own `lycoris_<path>` names, what SimpleTuner writes and
`create_lycoris_from_weights` reads. The keys are built here from module paths: diffusers'
`convert_state_dict_to_diffusers` on a transformer drops the attention weights on reload (measured).

LyCORIS keeps its preset in class attributes of `LycorisNetwork` (global state shared by every network in the
process); `_lycoris_preset` sets it from library defaults + this job's preset only while one network is built
and puts the previous values back, so no job sees another's preset.
"""
from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from webui.core.errors import ValidationError
from webui.engine.models.ldm_convert import unet_key_map
from webui.training.config import LycorisSpec, TrainingConfig
from webui.training.families import DENOISERS, denoiser_name

UNET = "unet"
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
_KOHYA_TE_PREFIX = {"sdxl": {"text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}}
_DEFAULT_TE_PREFIX = {"text_encoder": "lora_te"}
# kohya's default LoRA scope: everything inside the UNet's transformer blocks; the text encoder's attention + MLP.
_LORA_UNET_SCOPES = ("Transformer2DModel",)
_LORA_TE_SCOPES = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")
# Per family, where LoRA goes in the denoiser when it is not a UNet: AuraFlow's attention (joint and single blocks)
# and its feed-forward layers, i.e. every Linear of its transformer blocks.
_LORA_DENOISER_SCOPES: Mapping[str, tuple[str, ...]] = {"auraflow": ("Attention", "AuraFlowFeedForward")}
# How a family's network files are laid out (see the module docstring); every other family: kohya.
KOHYA, NATIVE = "kohya", "native"
FILE_LAYOUTS: Mapping[str, str] = {"auraflow": NATIVE}
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
_KOHYA_MODULE = {"lora": "networks.lora", "lycoris": "lycoris.kohya"}


@dataclass(frozen=True)
class AdapterModule:
    """One adapted layer: which component, its path in that component, and the module holding the weights."""

    component: str
    path: str
    module: torch.nn.Module


def components_to_train(pipe, config: TrainingConfig) -> tuple[str, ...]:
    chosen = [denoiser_name(pipe)] if config.train_unet else []
    if config.train_text_encoder:
        chosen += [name for name in TEXT_ENCODERS if getattr(pipe, name, None) is not None]
    return tuple(chosen)


# ------------------------------------------------------------------------------------------------------------------
# kohya names
# ------------------------------------------------------------------------------------------------------------------


class KohyaNamer:
    """Module path -> kohya module name, per family (SDXL UNet modules go by their LDM path)."""

    def __init__(self, pipe, family: str):
        self.family = family
        self._te_prefix = _KOHYA_TE_PREFIX.get(family, _DEFAULT_TE_PREFIX)
        self._ldm: dict[str, str] = {}
        if family == "sdxl":
            keys = [k for k, _ in pipe.unet.named_parameters() if k.endswith(".weight")]
            self._ldm = {k.removesuffix(".weight"): v.removesuffix(".weight")
                         for k, v in unet_key_map(keys, pipe.unet.config).items()}

    def name(self, component: str, path: str) -> str:
        if component in DENOISERS:
            return "lora_unet_" + self._ldm.get(path, path).replace(".", "_")
        prefix = self._te_prefix.get(component)
        if prefix is None:
            raise ValidationError(f"Text encoder '{component}' has no kohya name in a {self.family} model.")
        return f"{prefix}_text_model_{path.removeprefix('text_model.').replace('.', '_')}"


# ------------------------------------------------------------------------------------------------------------------
# The common interface
# ------------------------------------------------------------------------------------------------------------------


class TrainingNetwork(ABC):
    """Adapters attached to a pipeline for training. Base weights stay frozen; only adapter tensors train."""

    network_type: str = ""

    def __init__(self, namer: KohyaNamer):
        self.namer = namer
        self.notes: list[str] = []

    @abstractmethod
    def named_trainable(self) -> dict[str, torch.nn.Parameter]:
        """Every trainable tensor under a stable name (resume state is keyed by these)."""

    @abstractmethod
    def component_of(self, name: str) -> str:
        """Which pipeline component a trainable tensor (by `named_trainable` name) belongs to."""

    @abstractmethod
    def kohya_tensors(self) -> dict[str, torch.Tensor]:
        """The network in kohya/A1111 layout (float32 CPU copies)."""

    @abstractmethod
    def native_tensors(self) -> dict[str, torch.Tensor]:
        """The network in its family's own layout (`FILE_LAYOUTS`; float32 CPU copies)."""

    @abstractmethod
    def metadata(self) -> dict[str, str]:
        """`ss_network_module`, `ss_network_dim`, `ss_network_alpha`, `ss_network_args`."""

    def file_tensors(self) -> dict[str, torch.Tensor]:
        """What a saved network file holds: kohya names, or the family's own layout where it has no kohya one."""
        if FILE_LAYOUTS.get(self.namer.family, KOHYA) == NATIVE:
            return self.native_tensors()
        return self.kohya_tensors()

    def param_groups(self, unet_lr: float, text_encoder_lr: float) -> list[dict[str, Any]]:
        """UNet and text-encoder tensors in their own groups (their own learning rates), in a fixed order."""
        groups: dict[str, list[torch.nn.Parameter]] = {}
        for name, param in self.named_trainable().items():
            groups.setdefault(self.component_of(name), []).append(param)
        return [{"params": params, "lr": unet_lr if component in DENOISERS else text_encoder_lr, "name": component}
                for component, params in sorted(groups.items(), key=lambda kv: kv[0] not in DENOISERS)]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {name: param.detach().clone() for name, param in self.named_trainable().items()}

    def load_trainable_state(self, state: Mapping[str, torch.Tensor]) -> None:
        params = self.named_trainable()
        missing = sorted(set(params) - set(state))
        if missing:
            raise ValidationError(f"The saved training state does not fit this network ({missing[0]} missing).")
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state[name])


# ------------------------------------------------------------------------------------------------------------------
# PEFT LoRA
# ------------------------------------------------------------------------------------------------------------------


def _scoped_targets(model: torch.nn.Module, scopes: Sequence[str]) -> list[str]:
    """Paths of the Linear layers (and 1x1 convs) inside modules whose class is in `scopes`."""
    targets: list[str] = []
    for path, module in model.named_modules():
        if type(module).__name__ not in scopes:
            continue
        for sub, layer in module.named_modules():
            full = f"{path}.{sub}" if sub else path
            is_pointwise = isinstance(layer, torch.nn.Conv2d) and layer.kernel_size == (1, 1)
            if (isinstance(layer, torch.nn.Linear) or is_pointwise) and full not in targets:
                targets.append(full)
    return targets


class LoraNetwork(TrainingNetwork):
    """Plain LoRA through PEFT (`inject_adapter_in_model`), with kohya's default targets."""

    network_type = "lora"
    _ADAPTER = "default"

    def __init__(self, pipe, family: str, dim: int, alpha: float, components: Sequence[str]):
        from peft import LoraConfig, inject_adapter_in_model

        super().__init__(KohyaNamer(pipe, family))
        self.dim, self.alpha = dim, alpha
        self.layers: list[AdapterModule] = []
        for component in components:
            model = getattr(pipe, component)
            targets = _scoped_targets(model, _lora_scopes(family, component))
            if not targets:
                self.notes.append(f"No LoRA targets found in the {component}; it is not trained.")
                continue
            config = LoraConfig(r=dim, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                                init_lora_weights=True)
            inject_adapter_in_model(config, model, adapter_name=self._ADAPTER)
            modules = dict(model.named_modules())
            self.layers += [AdapterModule(component, path, modules[path]) for path in targets]

    def named_trainable(self) -> dict[str, torch.nn.Parameter]:
        params: dict[str, torch.nn.Parameter] = {}
        for layer in self.layers:
            params[f"{layer.component}:{layer.path}.down"] = layer.module.lora_A[self._ADAPTER].weight
            params[f"{layer.component}:{layer.path}.up"] = layer.module.lora_B[self._ADAPTER].weight
        return params

    def component_of(self, name: str) -> str:
        return name.split(":", 1)[0]

    def kohya_tensors(self) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            name = self.namer.name(layer.component, layer.path)
            tensors[f"{name}.lora_down.weight"] = _saveable(layer.module.lora_A[self._ADAPTER].weight)
            tensors[f"{name}.lora_up.weight"] = _saveable(layer.module.lora_B[self._ADAPTER].weight)
            tensors[f"{name}.alpha"] = torch.tensor(float(self.alpha))
        return tensors

    def native_tensors(self) -> dict[str, torch.Tensor]:
        """PEFT/diffusers keys; `lora_B` carries alpha / rank since diffusers and ComfyUI read them with alpha =
        rank (so the file computes exactly what was trained, in every reader)."""
        tensors: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            name = f"{layer.component}.{layer.path}"
            tensors[f"{name}.lora_A.weight"] = _saveable(layer.module.lora_A[self._ADAPTER].weight)
            tensors[f"{name}.lora_B.weight"] = _saveable(layer.module.lora_B[self._ADAPTER].weight) * (
                float(self.alpha) / self.dim)
        return tensors

    def metadata(self) -> dict[str, str]:
        return {"ss_network_module": _KOHYA_MODULE["lora"], "ss_network_dim": str(self.dim),
                "ss_network_alpha": _number(self.alpha)}


# ------------------------------------------------------------------------------------------------------------------
# LyCORIS
# ------------------------------------------------------------------------------------------------------------------


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
        tensors: dict[str, torch.Tensor] = {}
        for component, lora in self._modules():
            path = self.paths[component].get(id(lora.org_module[0]))
            if path is None:
                self.notes.append(f"LyCORIS module {lora.lora_name} has no model path; not saved.")
                continue
            name = self.namer.name(component, path)
            for key, value in lora.state_dict().items():
                tensors[f"{name}.{key}"] = _saveable(value)
        return tensors

    def native_tensors(self) -> dict[str, torch.Tensor]:
        """LyCORIS's own names (`lycoris_<path with _>`), as SimpleTuner saves them; the prefix is fixed here, not
        read from `LycorisNetwork.LORA_PREFIX` (class-level state another job may have changed)."""
        tensors: dict[str, torch.Tensor] = {}
        for component, lora in self._modules():
            path = self.paths[component].get(id(lora.org_module[0]))
            if path is None:
                self.notes.append(f"LyCORIS module {lora.lora_name} has no model path; not saved.")
                continue
            name = f"{LYCORIS_FILE_PREFIX}_{path}".replace(".", "_")
            for key, value in lora.state_dict().items():
                tensors[f"{name}.{key}"] = _saveable(value)
        return tensors

    def metadata(self) -> dict[str, str]:
        args = {"algo": self.spec.algo, **{k: v for k, v in self.spec.extra.items() if _is_jsonable(v)}}
        return {"ss_network_module": _KOHYA_MODULE["lycoris"], "ss_network_dim": str(self.spec.linear_dim),
                "ss_network_alpha": _number(self.spec.linear_alpha), "ss_network_args": json.dumps(args)}


# ------------------------------------------------------------------------------------------------------------------
# Factory and helpers
# ------------------------------------------------------------------------------------------------------------------


def create_network(pipe, family: str, config: TrainingConfig) -> TrainingNetwork:
    """The network the config asks for, attached to `pipe` (base weights frozen first)."""
    for name in (*DENOISERS, *TEXT_ENCODERS):
        model = getattr(pipe, name, None)
        if model is not None:
            model.requires_grad_(False)
    components = components_to_train(pipe, config)
    if config.is_lycoris:
        if config.lycoris is None:
            raise ValidationError("LyCORIS training needs a lycoris config.")
        network: TrainingNetwork = LycorisTrainingNetwork(pipe, family, config.lycoris, components)
    else:
        network = LoraNetwork(pipe, family, config.network_dim, config.network_alpha, components)
    if not network.named_trainable():
        raise ValidationError("The network has no trainable layers for this model: " + " ".join(network.notes))
    return network


def _lora_scopes(family: str, component: str) -> tuple[str, ...]:
    if component == UNET:
        return _LORA_UNET_SCOPES
    if component in DENOISERS:
        return _LORA_DENOISER_SCOPES.get(family, ())
    return _LORA_TE_SCOPES


def _saveable(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", torch.float32).contiguous().clone()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
