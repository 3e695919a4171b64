"""Loading flow-matching models: AuraFlow / Flux diffusers folders, and Flux single files (full checkpoint, or the
transformer alone with the text encoders and VAE taken from `models/text_encoder/` and `models/VAE/`).

Why here and not in `engine/models/loader.py`: the SD loader builds a derived config folder for diffusers'
`from_single_file`; Flux files are assembled part by part (`flux_parts.py`), and a transformer-only file needs the
user's choice of loose parts (Forge's "VAE / Text Encoder" selector, option `forge_additional_modules`, or found
automatically by their key layout). The SD loader calls `load_flow_file` / `finish_flow_folder` for these families.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import safetensors.torch
import torch

from webui.core.errors import ModelLoadError
from webui.engine.families.flux_parts import (
    FP8_DTYPES,
    build_clip,
    build_t5,
    build_transformer,
    build_vae,
    load_t5_tokenizer,
)
from webui.engine.models.clip_tokenizer import load_clip_tokenizer

CLIP_PREFIX = "text_encoders.clip_l.transformer."
T5_PREFIX = "text_encoders.t5xxl.transformer."
VAE_PREFIXES = ("vae.", "first_stage_model.")
TRANSFORMER_PREFIX = "model.diffusion_model."
PART_SUFFIXES = (".safetensors", ".sft")


@dataclass(frozen=True)
class FlowParts:
    """Where loose parts live and which the user chose (file names or paths; empty: found automatically)."""

    text_encoder_dir: Path | None = None
    vae_dir: Path | None = None
    chosen: tuple[str, ...] = field(default_factory=tuple)


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _kind_of(keys: list[str]) -> str | None:
    """'clip_l', 't5', 'vae' or None for a loose part file, by its key layout."""
    if any(k.startswith(("text_model.encoder.layers.", "encoder.layers.")) for k in keys) and \
            any("embeddings.token_embedding" in k for k in keys):
        return "clip_l"
    if any(k.startswith("encoder.block.") for k in keys):
        return "t5"
    if any(k.startswith(("encoder.conv_in.", "decoder.conv_in.")) for k in keys):
        return "vae"
    return None


def _candidates(parts: FlowParts) -> list[Path]:
    """The chosen files first (resolved against both folders), then every file in the folders."""
    folders = [d for d in (parts.text_encoder_dir, parts.vae_dir) if d is not None and d.is_dir()]
    chosen = []
    for name in parts.chosen:
        path = Path(name)
        found = path if path.is_absolute() else next((d / name for d in folders if (d / name).is_file()), None)
        if found is None or not found.is_file():
            raise ModelLoadError(f"The chosen part '{name}' (Settings > VAE / Text Encoder) is not in "
                                 f"models/text_encoder or models/VAE.")
        chosen.append(found)
    found_all = [p for d in folders for p in sorted(d.iterdir()) if p.suffix.lower() in PART_SUFFIXES]
    return chosen + [p for p in found_all if p not in chosen]


def _loose_parts(parts: FlowParts, needed: set[str], latent_channels: int) -> dict[str, dict[str, torch.Tensor]]:
    """The first file of each needed kind (a VAE must have the transformer's latent channels)."""
    from safetensors import safe_open

    found: dict[str, dict[str, torch.Tensor]] = {}
    for path in _candidates(parts):
        if needed <= set(found):
            break
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            kind = _kind_of(keys)
            if kind is None or kind in found or kind not in needed:
                continue
            if kind == "vae":
                conv_key = next((k for k in keys if k.endswith("encoder.conv_out.weight")), None)
                if conv_key is None or handle.get_slice(conv_key).get_shape()[0] // 2 != latent_channels:
                    continue
        found[kind] = safetensors.torch.load_file(str(path))
    return found


_PART_ADVICE = {
    "clip_l": "the CLIP-L text encoder (clip_l.safetensors in models/text_encoder/)",
    "t5": "the T5 text encoder (t5xxl_*.safetensors in models/text_encoder/)",
    "vae": "the Flux VAE (ae.safetensors in models/VAE/)",
    "t5_tokenizer": "the T5 tokenizer (FLUX.1's tokenizer_2 folder, copied to models/text_encoder/)",
}


def _t5_tokenizer(parts: FlowParts, vocab_rows: int):
    """The first tokenizer folder in models/text_encoder whose vocabulary fits the T5 embedding."""
    folder = parts.text_encoder_dir
    if folder is None or not folder.is_dir():
        return None
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / "tokenizer_config.json").is_file() or (sub / "tokenizer.json").is_file():
            tokenizer = load_t5_tokenizer(sub)
            if len(tokenizer) <= vocab_rows:
                return tokenizer
    return None


def _scheduler(guidance: bool):
    """Flux's published schedules: dev resolution-dependent shift (dynamic), schnell none."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if not guidance:
        return FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                           base_image_seq_len=256, max_image_seq_len=4096)


def load_flux_file(path: Path, *, parts: FlowParts, cache_dir: Path, dtype: torch.dtype):
    """A `FluxPipeline` from a single `.safetensors`: whatever the file lacks comes from `parts`. Raises
    `ModelLoadError` naming every missing part."""
    from diffusers import FluxPipeline

    state = safetensors.torch.load_file(str(path))
    transformer_state = _sub(state, TRANSFORMER_PREFIX) or {
        k: v for k, v in state.items() if not k.startswith((CLIP_PREFIX, T5_PREFIX, *VAE_PREFIXES))}
    found = {"clip_l": _sub(state, CLIP_PREFIX), "t5": _sub(state, T5_PREFIX),
             "vae": next((s for s in (_sub(state, p) for p in VAE_PREFIXES) if s), {})}
    found = {k: v for k, v in found.items() if v}
    del state
    transformer = build_transformer(transformer_state, dtype)
    needed = {"clip_l", "t5", "vae"} - set(found)
    if needed:
        found.update(_loose_parts(parts, needed, int(transformer.config.in_channels) // 4))
    t5_rows = next((int(v.shape[0]) for k, v in found.get("t5", {}).items() if k.endswith(("shared.weight",
                                                                                          "embed_tokens.weight"))), 0)
    tokenizer_2 = _t5_tokenizer(parts, t5_rows) if t5_rows else None
    missing = sorted(needed - set(found)) + (["t5_tokenizer"] if "t5" in found and tokenizer_2 is None else [])
    if missing:
        raise ModelLoadError(f"'{path.name}' cannot be used as it is: it needs "
                             + "; ".join(_PART_ADVICE[m] for m in missing)
                             + ". Choose them in Settings > VAE / Text Encoder, or put them in those folders.")
    if any(v.dtype in FP8_DTYPES for v in found["t5"].values()):
        found["t5"] = {k: v.to(dtype) for k, v in found["t5"].items()}
    tokenizer = load_clip_tokenizer(Path(cache_dir) / "tokenizers" / "clip-flux")
    return FluxPipeline(scheduler=_scheduler(bool(transformer.config.guidance_embeds)),
                        vae=build_vae(found["vae"], dtype), text_encoder=build_clip(found["clip_l"], dtype),
                        tokenizer=tokenizer, text_encoder_2=build_t5(found["t5"], dtype), tokenizer_2=tokenizer_2,
                        transformer=transformer)


def stored_in_fp8(folder: Path) -> torch.dtype | None:
    """The fp8 dtype a diffusers folder's transformer is stored in (read from the safetensors header), if any."""
    from safetensors import safe_open

    for file in sorted((folder / "transformer").glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in list(handle.keys())[:64]:
                dtype = handle.get_slice(key).get_dtype()
                if dtype in ("F8_E4M3", "F8_E5M2"):
                    return torch.float8_e4m3fn if dtype == "F8_E4M3" else torch.float8_e5m2
    return None
