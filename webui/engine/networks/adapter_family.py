"""Which model family an adapter file is for, read from its tensor names (and its metadata when the names are
ambiguous), so the Extra Networks panel lists only files that fit the loaded model and a prompt naming a file of
another family gets a clear note instead of a shape error.

Why names first: every trainer writes its module names, but not every trainer writes `ss_base_model_version` /
`modelspec.architecture` (and users rename files). The rules are a small table of name patterns; a file whose
names fit no rule (or fit two) has no family and is shown for every model, as A1111 shows unknown files.
Families compare by group: a LoRA for "sd" (SD1/SD2/SDXL) is shown for every SD model, as A1111 does by default.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

SD, AURAFLOW, FLUX = "sd", "auraflow", "flux"
# Model family -> the group adapters are matched by.
FAMILY_GROUPS: Mapping[str, str] = {"sd1": SD, "sd2": SD, "sdxl": SD, SD: SD, AURAFLOW: AURAFLOW, FLUX: FLUX}
FAMILY_LABELS: Mapping[str, str] = {SD: "Stable Diffusion", AURAFLOW: "AuraFlow", FLUX: "Flux"}

# Root prefixes before a denoiser path (dots as `_`), for names that only mean something at the model's root.
_ROOTS = ("", "transformer_", "diffusion_model_", "lycoris_", "lora_transformer_", "lora_unet_")


def _at_root(path: str) -> tuple[str, ...]:
    return tuple(f"\n{root}{path}" for root in _ROOTS)


# (family, substrings of the names with `.` written `_` and a newline before each name). Substrings, not regular
# expressions: a LoRA has thousands of keys and a listing reads every file (measured: 90 ms per file with regular
# expressions, ~1 ms with substrings). Text-encoder names are left out on purpose: kohya's Flux files name CLIP-L
# `lora_te1_` as SDXL files do. A file matching two families' rules has no family.
_NAME_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (AURAFLOW, ("joint_transformer_blocks_", "_ff_linear_", "_ff_context_linear_", "_out_projection",
                "time_step_embed", "time_step_proj", "register_tokens")),
    (FLUX, ("double_blocks_", "single_blocks_", "proj_mlp", "x_embedder", "time_text_embed",
            *_at_root("transformer_blocks_"))),
    (SD, ("_down_blocks_", "_up_blocks_", "_mid_block_", "_input_blocks_", "_output_blocks_", "_middle_block_",
          *_at_root("down_blocks_"), *_at_root("input_blocks_"), "\nlora_te2_", "\nunet_")),
)
_METADATA_KEYS = ("ss_base_model_version", "modelspec.architecture")
_METADATA_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (FLUX, ("flux",)), (AURAFLOW, ("aura",)),
    (SD, ("sdxl", "stable-diffusion-xl", "sd_v1", "sd_v2", "stable-diffusion-v1", "stable-diffusion-v2")),
)


def family_from_names(names: Iterable[str]) -> str | None:
    """The family the tensor names point to; None when they fit no rule, or several families' rules."""
    text = "\n" + "\n".join(names).replace(".", "_")
    found = {family for family, needles in _NAME_RULES if any(needle in text for needle in needles)}
    return found.pop() if len(found) == 1 else None


def family_from_metadata(metadata: Mapping[str, str]) -> str | None:
    """The family kohya's `ss_base_model_version` or the model spec's `modelspec.architecture` names."""
    text = " ".join(str(metadata.get(key, "")) for key in _METADATA_KEYS).casefold()
    for family, needles in _METADATA_RULES:
        if any(needle in text for needle in needles):
            return family
    return None


def adapter_family(names: Iterable[str], metadata: Mapping[str, str]) -> str | None:
    """An adapter file's family group: from its tensor names, else its metadata, else None (unknown)."""
    return family_from_names(names) or family_from_metadata(metadata)


def fits_family(adapter: str | None, model_family: str | None) -> bool:
    """Whether an adapter of family group `adapter` may be used with a model of `model_family` (unknown on
    either side: yes, the file is tried and the shapes decide)."""
    if adapter is None or model_family is None:
        return True
    return FAMILY_GROUPS.get(model_family, model_family) == adapter


def family_label(family: str | None) -> str:
    """A family (or group) as users name it: "Stable Diffusion", "AuraFlow", "Flux", "an unknown model family"."""
    group = FAMILY_GROUPS.get(family or "", family or "")
    return FAMILY_LABELS.get(group, group or "an unknown model family")
