"""Plain LoRA through PEFT, on kohya's default targets, saved with kohya names or (AuraFlow) PEFT/diffusers keys.

Why PEFT: `inject_adapter_in_model` wraps the chosen Linear layers (and 1x1 convs) in place, so the pipeline's own
forward trains them with no model code of ours. The targets are kohya's scope (every layer inside the UNet's
transformer blocks; the text encoder's attention and MLP), so a job trains what a kohya run would. AuraFlow's
files use PEFT/diffusers keys `transformer.<path>.lora_A/lora_B.weight` (read by
`AuraFlowPipeline.load_lora_weights` and ComfyUI), with alpha / rank folded into `lora_B` because those readers
take alpha = rank. The keys are built here from module paths: diffusers' `convert_state_dict_to_diffusers` on a
transformer drops the attention weights on reload (measured).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from webui.training.families import DENOISERS
from webui.training.network_base import (
    AdapterModule,
    KohyaNamer,
    TrainingNetwork,
    metadata_number,
    saveable_tensor,
)

UNET = "unet"
# kohya's default LoRA scope: everything inside the UNet's transformer blocks; the text encoder's attention + MLP.
_LORA_UNET_SCOPES = ("Transformer2DModel",)
_LORA_TE_SCOPES = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")
# Per family, where LoRA goes in the denoiser when it is not a UNet: AuraFlow's attention (joint and single blocks)
# and its feed-forward layers, i.e. every Linear of its transformer blocks.
_LORA_DENOISER_SCOPES: Mapping[str, tuple[str, ...]] = {"auraflow": ("Attention", "AuraFlowFeedForward")}
KOHYA_MODULE = "networks.lora"


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


def _lora_scopes(family: str, component: str) -> tuple[str, ...]:
    if component == UNET:
        return _LORA_UNET_SCOPES
    if component in DENOISERS:
        return _LORA_DENOISER_SCOPES.get(family, ())
    return _LORA_TE_SCOPES


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
            tensors[f"{name}.lora_down.weight"] = saveable_tensor(layer.module.lora_A[self._ADAPTER].weight)
            tensors[f"{name}.lora_up.weight"] = saveable_tensor(layer.module.lora_B[self._ADAPTER].weight)
            tensors[f"{name}.alpha"] = torch.tensor(float(self.alpha))
        return tensors

    def native_tensors(self) -> dict[str, torch.Tensor]:
        """PEFT/diffusers keys; `lora_B` carries alpha / rank since diffusers and ComfyUI read them with alpha =
        rank (so the file computes exactly what was trained, in every reader)."""
        tensors: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            name = f"{layer.component}.{layer.path}"
            tensors[f"{name}.lora_A.weight"] = saveable_tensor(layer.module.lora_A[self._ADAPTER].weight)
            tensors[f"{name}.lora_B.weight"] = saveable_tensor(layer.module.lora_B[self._ADAPTER].weight) * (
                float(self.alpha) / self.dim)
        return tensors

    def metadata(self) -> dict[str, str]:
        return {"ss_network_module": KOHYA_MODULE, "ss_network_dim": str(self.dim),
                "ss_network_alpha": metadata_number(self.alpha)}

