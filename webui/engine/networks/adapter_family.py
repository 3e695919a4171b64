"""Which model family an adapter file is for, read from its tensor names (and its metadata when the names are
ambiguous), so the Extra Networks panel lists only files that fit the loaded model and a prompt naming a file of
another family gets a clear note instead of a shape error.

Why names first: every trainer writes its module names, but not every trainer writes `ss_base_model_version` /
`modelspec.architecture` (and users rename files). The rules are a small table of name patterns; a file whose
names fit no rule (or fit two) has no family and is shown for every model, as A1111 shows unknown files.
Families compare by group: a LoRA for "sd" (SD1/SD2/SDXL) is shown for every SD model, as A1111 does by default.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SD, AURAFLOW, FLUX = "sd", "auraflow", "flux"
# Model family -> the group adapters are matched by.
FAMILY_GROUPS: Mapping[str, str] = {"sd1": SD, "sd2": SD, "sdxl": SD, SD: SD, AURAFLOW: AURAFLOW, FLUX: FLUX}
FAMILY_LABELS: Mapping[str, str] = {SD: "Stable Diffusion", AURAFLOW: "AuraFlow", FLUX: "Flux"}

_SEP = r"[._]"
_ROOT = r"^(transformer\.|diffusion_model\.|lycoris_|lora_transformer_|lora_unet_)?"
# (family, pattern over one tensor name). Text-encoder names are left out on purpose: kohya's Flux files name
# CLIP-L `lora_te1_` as SDXL files do. A file matching two families' rules has no family.
_NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (AURAFLOW, re.compile(rf"joint_transformer_blocks{_SEP}\d|{_SEP}ff{_SEP}(linear_1|linear_2|out_projection)"
                          rf"|{_ROOT}(time_step_embed|time_step_proj|register_tokens)")),
    (FLUX, re.compile(rf"(^|{_SEP})(double_blocks|single_blocks){_SEP}\d|{_SEP}proj_mlp|{_ROOT}x_embedder"
                      rf"|{_ROOT}transformer_blocks{_SEP}\d|{_ROOT}time_text_embed")),
    (SD, re.compile(rf"(^|{_SEP})(down_blocks|up_blocks|mid_block|input_blocks|output_blocks|middle_block)"
                    rf"{_SEP}|^lora_te2_|^unet\.")),
)
_METADATA_KEYS = ("ss_base_model_version", "modelspec.architecture")
_METADATA_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (FLUX, ("flux",)), (AURAFLOW, ("aura",)),
    (SD, ("sdxl", "stable-diffusion-xl", "sd_v1", "sd_v2", "stable-diffusion-v1", "stable-diffusion-v2")),
)


def family_from_names(names: Iterable[str]) -> str | None:
    """The family the tensor names point to; None when they fit no rule, or several families' rules."""
    names = list(names)
    found = {family for family, pattern in _NAME_RULES if any(pattern.search(name) for name in names)}
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
