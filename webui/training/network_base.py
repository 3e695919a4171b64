"""What every trainable network shares: kohya module names, the common interface, resume state and file layouts.

Why kohya names: the file a job saves must load in A1111 (and in our own `AdapterSet`) without any conversion, so
every adapter module is named from the model path it wraps (`lora_unet_*`, `lora_te_*`; SDXL: LDM UNet paths and
`lora_te1_`/`lora_te2_`) and carries its real `alpha` (diffusers' converter writes the rank there, and names the
SD1 text encoder `lora_te1_encoder_...` under transformers 5: both wrong for A1111).

AuraFlow has no kohya/A1111 layout (neither trains nor runs it), so its files use what its users load them with
(`FILE_LAYOUTS`); each network writes that layout in `native_tensors` (`lora_network.py`, `lycoris_network.py`).
Kept apart from the two network kinds so the trainer, resume state and export depend on this interface only.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from webui.core.errors import ValidationError
from webui.engine.models.ldm_convert import unet_key_map
from webui.training.families import DENOISERS

_KOHYA_TE_PREFIX = {"sdxl": {"text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}}
_DEFAULT_TE_PREFIX = {"text_encoder": "lora_te"}
# How a family's network files are laid out (see the module docstring); every other family: kohya.
KOHYA, NATIVE = "kohya", "native"
FILE_LAYOUTS: Mapping[str, str] = {"auraflow": NATIVE}


@dataclass(frozen=True)
class AdapterModule:
    """One adapted layer: which component, its path in that component, and the module holding the weights."""

    component: str
    path: str
    module: torch.nn.Module


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


def saveable_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 CPU copy, what every network file holds."""
    return tensor.detach().to("cpu", torch.float32).contiguous().clone()


def metadata_number(value: float) -> str:
    """`ss_network_dim`/`ss_network_alpha` text: integers without a trailing `.0`, as kohya writes them."""
    return str(int(value)) if float(value).is_integer() else str(value)
