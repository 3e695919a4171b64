"""The `info` object of txt2img/img2img answers, in the shape of A1111's `Processed.js()`.

Why every key, always: typed A1111 clients (pydantic models of `Processed`) reject an answer that lacks any of
them, so keys we have nothing for are still sent, with the value A1111 sends in the same situation (no face
restoration: `restore_faces` false and `face_restoration_model` null; no VAE file: `sd_vae_name` null).
What the engine resolved per image (model and VAE hashes of scripts' images, extra parameters) is read back from
the image's infotext, the one record every path writes.
"""
from __future__ import annotations

import re
from typing import Any

from webui.core.generation_info import APP_VERSION
from webui.core.infotext import parse_infotext
from webui.core.results import GenerationResult

# Keys A1111's `create_infotext` writes from its own fields; every other infotext key is an extra parameter.
_MAIN_INFOTEXT_KEYS = frozenset((
    "Steps", "Sampler", "CFG scale", "Image CFG scale", "Seed", "Face restoration", "Size", "Model hash", "Model",
    "VAE hash", "VAE", "Variation seed", "Variation seed strength", "Seed resize from", "Denoising strength",
    "Conditional mask weight", "Clip skip", "ENSD", "Token merging ratio", "Token merging ratio hr",
    "Init image hash", "RNG", "NGMS", "Tiling", "Version", "User",
))
_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?")


def processed_info(result: GenerationResult) -> dict[str, Any]:
    """A1111's `Processed.js()` keys and types for `result`, plus our `interrupted` and `warnings`."""
    request = result.request
    count = len(result.images)
    params = parse_infotext(result.infotexts[0]).params if result.images else {}
    prompts, negatives = _image_prompts(result)
    return {
        "prompt": request.prompt,
        "all_prompts": prompts,
        "negative_prompt": request.negative_prompt,
        "all_negative_prompts": negatives,
        "seed": request.seed,
        "all_seeds": result.seeds,
        "subseed": request.subseed,
        "all_subseeds": [request.subseed + i for i in range(count)],
        "subseed_strength": float(request.subseed_strength),
        "width": request.width,
        "height": request.height,
        "sampler_name": request.sampler_name,
        "cfg_scale": float(request.cfg_scale),
        "steps": request.steps,
        "batch_size": request.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": result.model_name or params.get("Model"),
        "sd_model_hash": result.model_hash or params.get("Model hash"),
        "sd_vae_name": result.vae_name or params.get("VAE"),
        "sd_vae_hash": result.vae_hash or params.get("VAE hash"),
        "seed_resize_from_w": request.seed_resize_from_w or -1,
        "seed_resize_from_h": request.seed_resize_from_h or -1,
        "denoising_strength": float(request.denoising_strength),
        "extra_generation_params": extra_generation_params(params),
        "index_of_first_image": 0,
        "infotexts": result.infotexts,
        "styles": list(request.styles),
        "job_timestamp": result.job_timestamp,
        "clip_skip": request.clip_skip,
        "is_using_inpainting_conditioning": result.inpainting_model,
        "version": params.get("Version") or APP_VERSION,
        "interrupted": result.interrupted,
        "warnings": list(result.warnings),
    }


def _image_prompts(result: GenerationResult) -> tuple[list[str], list[str]]:
    """Each image's own prompt and negative prompt, read from its infotext: an extension such as dynamic prompts
    may give every image another prompt (A1111's `all_prompts` lists them); the request's when there is none."""
    request = result.request
    parsed = [parse_infotext(text) if text else None for text in result.infotexts]
    return ([p.prompt if p else request.prompt for p in parsed],
            [p.negative_prompt if p else request.negative_prompt for p in parsed])


def extra_generation_params(params: dict[str, str]) -> dict[str, Any]:
    """The infotext keys beyond A1111's main ones (hires, mask, LoRA hashes ...), numbers as numbers as A1111
    keeps them in `p.extra_generation_params`."""
    return {key: _typed(value) for key, value in params.items() if key not in _MAIN_INFOTEXT_KEYS}


def _typed(value: str) -> Any:
    if _INT_RE.fullmatch(value):
        return int(value)
    if _FLOAT_RE.fullmatch(value):
        return float(value)
    return value
