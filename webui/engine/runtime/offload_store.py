"""Where a module's real tensors are under `--lowvram`.

accelerate's sequential offload (`enable_sequential_cpu_offload`) leaves every parameter on the meta device and
keeps the real tensor in the module's offload hook (`_hf_hook.weights_map`), copying it to the GPU for each
forward. Code that changes weights in place (LoRA merges, textual-inversion rows) must change the stored tensor:
a write into the meta parameter silently does nothing, and a resized meta parameter no longer matches the store.
"""
from __future__ import annotations

import torch


def _store(module: torch.nn.Module):
    return getattr(getattr(module, "_hf_hook", None), "weights_map", None)


def stored_tensor(module: torch.nn.Module, name: str = "weight") -> torch.Tensor:
    """The tensor holding `module.<name>`: the parameter itself, or the offload store's copy when streamed."""
    tensor = getattr(module, name)
    store = _store(module)
    if tensor.is_meta and store is not None:
        return store[name]
    return tensor


def is_streamed(module: torch.nn.Module, name: str = "weight") -> bool:
    return getattr(module, name).is_meta and _store(module) is not None


def replace_stored(module: torch.nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Put `tensor` (another shape allowed) in the offload store and give the module a meta parameter of its
    shape, so the hook's next copy to the device fits."""
    store = _store(module)
    key = name
    while hasattr(store, "prefix") and hasattr(store, "dataset"):  # accelerate's PrefixedDataset, maybe nested
        key, store = store.prefix + key, store.dataset
    store[key] = tensor
    setattr(module, name, torch.nn.Parameter(torch.empty(tensor.shape, dtype=tensor.dtype, device="meta"),
                                             requires_grad=False))


def _hook_device(module: torch.nn.Module) -> torch.device | None:
    hook = getattr(module, "_hf_hook", None)
    for part in getattr(hook, "hooks", (hook,)):  # accelerate's SequentialHook holds several
        device = getattr(part, "execution_device", None)
        if device is not None:
            return torch.device(device)
    return None


def execution_device(module: torch.nn.Module) -> torch.device:
    """The device `module` computes on: an offload hook's execution device (`--medvram` hooks the module itself,
    `--lowvram` its layers), else where its parameters are. Inputs made for the module go there; a parameter's
    device is `meta` under `--lowvram`, and a tensor made on the meta device cannot be copied anywhere. Cheap
    unless streamed: the layers are only searched when the parameters are on the meta device."""
    own = _hook_device(module)
    if own is not None:
        return own
    param = next(module.parameters(), None)
    if param is None or not param.is_meta:
        return param.device if param is not None else torch.device("cpu")
    return next((device for sub in module.modules() if (device := _hook_device(sub)) is not None),
                torch.device("cpu"))
