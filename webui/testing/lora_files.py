"""Write LoRA / LyCORIS files in the real on-disk key layouts, for a given pipeline, with random weights.

Why: tests and benchmarks need kohya LoRA/LoCon, LoHa, LoKr, full-diff, PEFT and SimpleTuner files without
downloading any. Each writer targets real module names of the pipeline, so the files are what a trainer would
have produced for that architecture.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from webui.engine.models.ldm_convert import unet_key_map


def attention_targets(pipe, limit: int = 4) -> list[str]:
    """Diffusers paths of some UNet attention projections (what LoRAs usually train)."""
    names = [n for n, m in pipe.unet.named_modules() if isinstance(m, torch.nn.Linear)
             and n.endswith(("attn1.to_q", "attn1.to_k", "attn2.to_v", "attn1.to_out.0"))]
    return names[:limit]


def text_targets(encoder, limit: int = 2) -> list[str]:
    names = [n for n, m in encoder.named_modules() if isinstance(m, torch.nn.Linear) and n.endswith(("q_proj",
                                                                                                        "v_proj"))]
    return names[:limit]


def conv_targets(pipe, limit: int = 2) -> list[str]:
    return [n for n, m in pipe.unet.named_modules() if isinstance(m, torch.nn.Conv2d) and n.endswith("conv1")][:limit]


def _module(root: torch.nn.Module, path: str) -> torch.nn.Module:
    return dict(root.named_modules())[path]


def _kohya_te_name(pipe, encoder_attr: str, path: str) -> str:
    is_sdxl = getattr(pipe, "text_encoder_2", None) is not None
    prefix = {"text_encoder": "lora_te1" if is_sdxl else "lora_te", "text_encoder_2": "lora_te2"}[encoder_attr]
    bare = path.removeprefix("text_model.")
    return f"{prefix}_text_model_{bare.replace('.', '_')}"


def _unet_name(pipe, path: str, ldm_names: bool) -> str:
    if ldm_names:
        ldm = unet_key_map([f"{path}.weight"], pipe.unet.config)[f"{path}.weight"]
        return "lora_unet_" + ldm.removesuffix(".weight").replace(".", "_")
    return "lora_unet_" + path.replace(".", "_")


def _lora_pair(weight: torch.Tensor, rank: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    out_dim, in_dim = weight.shape[0], weight.shape[1]
    if weight.dim() == 4:
        kh, kw = weight.shape[2:]
        down = torch.randn(rank, in_dim, kh, kw, generator=gen) * 0.1
        up = torch.randn(out_dim, rank, 1, 1, generator=gen) * 0.1
    else:
        down = torch.randn(rank, in_dim, generator=gen) * 0.1
        up = torch.randn(out_dim, rank, generator=gen) * 0.1
    return {"lora_down.weight": down, "lora_up.weight": up, "alpha": torch.tensor(float(rank) / 2)}


def _loha(weight: torch.Tensor, rank: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    out_dim, in_dim = weight.shape[0], weight.shape[1]
    r = lambda *s: torch.randn(*s, generator=gen) * 0.3  # noqa: E731
    return {"hada_w1_a": r(out_dim, rank), "hada_w1_b": r(rank, in_dim), "hada_w2_a": r(out_dim, rank),
            "hada_w2_b": r(rank, in_dim), "alpha": torch.tensor(float(rank))}


def _lokr(weight: torch.Tensor, rank: int, gen: torch.Generator, factorised: bool) -> dict[str, torch.Tensor]:
    out_dim, in_dim = weight.shape[0], weight.shape[1]
    a, b = 2, 2  # kron(w1 [a, b], w2 [out/a, in/b])
    r = lambda *s: torch.randn(*s, generator=gen) * 0.1  # noqa: E731
    tensors = {"lokr_w1": r(a, b)}
    if factorised:
        tensors.update({"lokr_w2_a": r(out_dim // a, rank), "lokr_w2_b": r(rank, in_dim // b),
                        "alpha": torch.tensor(float(rank))})
    else:
        tensors["lokr_w2"] = r(out_dim // a, in_dim // b)
    return tensors


def write_adapter(path: Path, pipe, fmt: str, *, seed: int = 0, rank: int = 4, ldm_names: bool = False,
                  include_text: bool = True, metadata: dict[str, str] | None = None, targets: int = 4) -> Path:
    """fmt: lora, locon, loha, lokr, lokr_factorised, full, peft, simpletuner."""
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    unet_paths = attention_targets(pipe, targets) + (conv_targets(pipe) if fmt == "locon" else [])
    for path_ in unet_paths:
        weight = _module(pipe.unet, path_).weight
        if fmt in ("lora", "locon"):
            parts = _lora_pair(weight, rank, gen)
            name = _unet_name(pipe, path_, ldm_names)
        elif fmt == "loha":
            parts, name = _loha(weight, rank, gen), _unet_name(pipe, path_, ldm_names)
        elif fmt in ("lokr", "lokr_factorised"):
            parts, name = _lokr(weight, rank, gen, fmt == "lokr_factorised"), _unet_name(pipe, path_, ldm_names)
        elif fmt == "full":
            parts, name = {"diff": torch.randn(weight.shape, generator=gen) * 0.02}, _unet_name(pipe, path_, False)
        elif fmt == "peft":
            pair = _lora_pair(weight, rank, gen)
            parts = {"lora_A.weight": pair["lora_down.weight"], "lora_B.weight": pair["lora_up.weight"]}
            name = f"unet.{path_}"
        elif fmt == "simpletuner":
            parts, name = _lokr(weight, rank, gen, True), "lycoris_" + path_.replace(".", "_")
        else:
            raise ValueError(fmt)
        tensors.update({f"{name}.{k}": v.contiguous() for k, v in parts.items()})
    if include_text and fmt in ("lora", "locon"):
        for attr in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, attr, None)
            if encoder is None:
                continue
            for path_ in text_targets(encoder):
                parts = _lora_pair(_module(encoder, path_).weight, rank, gen)
                tensors.update({f"{_kohya_te_name(pipe, attr, path_)}.{k}": v for k, v in parts.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata or {"ss_network_module": "networks.lora",
                                                        "ss_network_dim": str(rank)})
    return path
