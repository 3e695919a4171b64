"""The infotext parameters of one generated image, from the request and what the engine resolved.

Why in core: the UI, the API and the scripts must all write the same keys in the same way.
"""
from __future__ import annotations

from webui.core.requests import GenerationRequest

APP_VERSION = "0.1.0"
# The infotext's `Version` names the app, not just a number: A1111 reads a bare "0.1.0" as a very old A1111 and
# pastes such an image with its backwards-compatibility options (old prompt-editing timelines, padded conds for
# DDIM/PLMS, downcast alphas_cumprod), i.e. a different image. A name makes its version parse fail, so A1111 applies
# none of them, as it does for other apps' infotexts.
INFOTEXT_VERSION = f"sd-studio {APP_VERSION}"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def generation_params(
    request: GenerationRequest,
    *,
    seed: int,
    sampler: str,
    subseed: int | None = None,
    schedule: str,
    model_name: str,
    model_hash: str,
    vae_name: str | None = None,
    vae_hash: str | None = None,
) -> dict[str, object]:
    """A1111's parameter keys for one image (key order is applied by the infotext writer)."""
    params: dict[str, object] = {
        "Steps": request.steps,
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": _number(request.cfg_scale),
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model_hash or None,
        "Model": model_name or None,
        "VAE hash": vae_hash,
        "VAE": vae_name,
    }
    if request.subseed_strength > 0 and subseed is not None:
        params["Variation seed"] = subseed
        params["Variation seed strength"] = _number(request.subseed_strength)
    if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0:
        params["Seed resize from"] = f"{request.seed_resize_from_w}x{request.seed_resize_from_h}"
    if request.clip_skip > 1:
        params["Clip skip"] = request.clip_skip
    for key, value in request.extra_params:
        params[key] = value
    params["Version"] = INFOTEXT_VERSION
    return params
