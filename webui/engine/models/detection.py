"""Tell what a model file is from its tensor names alone: the key-signature tables and their lookups.

Why: A1111 users drop any `.safetensors`/`.ckpt` into `models/` and expect it to work: SD1, SD2, SDXL,
inpainting models, and by mistake LoRAs or VAEs. The file's key names say which family it is (each family stores
its text encoder under a different prefix), so we never guess from a file name. Kept as data tables, apart from
the shape measuring (`architecture.py`), so a new family or file kind is one row here.

Two entry points:
- `detect_kind_from_keys(keys)`: first matching row of `SIGNATURES` (a data table, most specific first).
- `detect_family_from_diffusers_config(model_index, text_encoder_config)`: the family of a diffusers folder.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

# Kinds of file.
CHECKPOINT = "checkpoint"
VAE = "vae"
LORA = "lora"
EMBEDDING = "embedding"
CONTROLNET = "controlnet"
UNKNOWN = "unknown"

# Checkpoint families.
SD1 = "sd1"
SD2 = "sd2"
SDXL = "sdxl"
SDXL_REFINER = "sdxl_refiner"
AURAFLOW = "auraflow"
FLUX = "flux"
# What the txt2img/img2img tabs can run (the flow-matching ones through `engine/families/`).
GENERATION_FAMILIES = (SD1, SD2, SDXL, AURAFLOW, FLUX)
BFL_PREFIX = "model.diffusion_model."


@dataclass(frozen=True)
class DetectedKind:
    """What a file is: `kind` (checkpoint, vae, lora, embedding, controlnet, unknown), `family` for checkpoints."""

    kind: str
    family: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class KeySignature:
    """One row of the detection table.

    A file matches when, for each entry of `required`, some key starts with it; no key starts with an entry of
    `forbidden`; and, when `only` is set, every key starts with one of `only`.
    """

    kind: str
    family: str | None
    required: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    notes: str = ""


_LORA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lycoris_")

# Most specific first: SDXL files also contain `model.diffusion_model.`, a LoRA may name `lora_unet_...` only.
SIGNATURES: tuple[KeySignature, ...] = (
    # Flux.1: BFL's transformer (`double_blocks` + `single_blocks`), alone or in a full checkpoint, or diffusers'.
    KeySignature(CHECKPOINT, FLUX, (BFL_PREFIX + "double_blocks.", BFL_PREFIX + "single_blocks."),
                 notes="Flux.1 full checkpoint (BFL transformer + text encoders + VAE)"),
    # Whole weight names (not just module prefixes), so a LoRA on the same modules (`img_in.lora_A.weight`) never
    # reads as a model.
    KeySignature(CHECKPOINT, FLUX, ("double_blocks.", "single_blocks.", "img_in.weight", "final_layer.linear.weight"),
                 notes="Flux.1 transformer (BFL layout)"),
    KeySignature(CHECKPOINT, FLUX, ("single_transformer_blocks.", "x_embedder.weight", "context_embedder.weight",
                                    "transformer_blocks.0.attn.to_q.weight"),
                 notes="Flux.1 transformer (diffusers layout)"),
    KeySignature(CHECKPOINT, AURAFLOW, ("joint_transformer_blocks.", "single_transformer_blocks."),
                 notes="AuraFlow transformer (diffusers layout)"),
    KeySignature(CHECKPOINT, SDXL,
                 ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model.", UNET_PREFIX),
                 notes="SDXL: CLIP-L + OpenCLIP bigG text encoders"),
    KeySignature(CHECKPOINT, SDXL_REFINER, ("conditioner.embedders.0.model.", UNET_PREFIX),
                 forbidden=("conditioner.embedders.1.",), notes="SDXL refiner: OpenCLIP bigG only"),
    KeySignature(CHECKPOINT, SD2, ("cond_stage_model.model.", UNET_PREFIX), notes="SD2: OpenCLIP ViT-H text encoder"),
    KeySignature(CHECKPOINT, SD1, ("cond_stage_model.transformer.", UNET_PREFIX), notes="SD1: CLIP-L text encoder"),
    KeySignature(LORA, None, ("lora_unet_",), notes="kohya LoRA/LyCORIS (UNet)"),
    KeySignature(LORA, None, ("lora_te",), notes="kohya LoRA/LyCORIS (text encoder only)"),
    KeySignature(LORA, None, ("lycoris_",), notes="SimpleTuner LyCORIS"),
    KeySignature(EMBEDDING, None, ("string_to_param",), notes="textual inversion (.pt, A1111)"),
    KeySignature(EMBEDDING, None, ("emb_params",), only=("emb_params",), notes="textual inversion (safetensors)"),
    KeySignature(EMBEDDING, None, ("clip_l", "clip_g"), only=("clip_l", "clip_g"), notes="SDXL textual inversion"),
    KeySignature(VAE, None, ("encoder.conv_in.weight", "decoder.conv_in.weight"), forbidden=(UNET_PREFIX,),
                 notes="standalone VAE"),
    KeySignature(VAE, None, (VAE_PREFIX,), only=(VAE_PREFIX,), notes="standalone VAE with first_stage_model. prefix"),
    KeySignature(CONTROLNET, None, ("control_model.",), notes="ControlNet"),
    KeySignature(CONTROLNET, None, ("controlnet_cond_embedding.",), notes="ControlNet (diffusers layout)"),
)

_UNKNOWN = DetectedKind(UNKNOWN, None, "no known key signature")


def _matches(signature: KeySignature, keys: list[str]) -> bool:
    if not all(any(k.startswith(req) for k in keys) for req in signature.required):
        return False
    if signature.forbidden and any(k.startswith(signature.forbidden) for k in keys):
        return False
    return signature.only is None or all(k.startswith(signature.only) for k in keys)


def detect_kind_from_keys(keys: Iterable[str]) -> DetectedKind:
    """Classify a state dict by its key names: the first row of `SIGNATURES` that matches, else `unknown`."""
    key_list = list(keys)
    for signature in SIGNATURES:
        if key_list and _matches(signature, key_list):
            return DetectedKind(signature.kind, signature.family, signature.notes)
    return _UNKNOWN


# --- diffusers folders --------------------------------------------------------------------------------------------

# (pipeline class, text encoder activation) -> family; `None` matches any activation. SD1 and SD2 share the
# pipeline class; their text encoders differ (OpenAI CLIP uses quick_gelu, OpenCLIP gelu).
DIFFUSERS_FAMILIES: dict[tuple[str, str | None], str] = {
    ("StableDiffusionXLPipeline", None): SDXL,
    ("StableDiffusionXLInpaintPipeline", None): SDXL,
    ("StableDiffusionXLImg2ImgPipeline", None): SDXL,
    ("StableDiffusionPipeline", "quick_gelu"): SD1,
    ("StableDiffusionInpaintPipeline", "quick_gelu"): SD1,
    ("StableDiffusionImg2ImgPipeline", "quick_gelu"): SD1,
    ("StableDiffusionPipeline", "gelu"): SD2,
    ("StableDiffusionInpaintPipeline", "gelu"): SD2,
    ("StableDiffusionImg2ImgPipeline", "gelu"): SD2,
    ("AuraFlowPipeline", None): AURAFLOW,
    ("FluxPipeline", None): FLUX,
    ("FluxImg2ImgPipeline", None): FLUX,
    ("FluxInpaintPipeline", None): FLUX,
}


def detect_family_from_diffusers_config(
    model_index: Mapping[str, object], text_encoder_config: Mapping[str, object]
) -> str | None:
    """Family of a diffusers folder from its `model_index.json` and `text_encoder/config.json`, else None."""
    pipeline = str(model_index.get("_class_name", ""))
    activation = str(text_encoder_config.get("hidden_act", ""))
    return DIFFUSERS_FAMILIES.get((pipeline, None)) or DIFFUSERS_FAMILIES.get((pipeline, activation))
