"""A1111-compatible /sdapi/v1 routes. Handlers translate shapes and call `Services`; nothing else."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.requests import Request

from webui.api.models import ImagesResponse, OptionsBody, PngInfoBody, Txt2ImgBody
from webui.core.errors import ModelNotFoundError, ValidationError, WebUIError
from webui.core.requests import GenerationRequest
from webui.core.results import GenerationResult
from webui.services import Services

log = logging.getLogger(__name__)

# A1111 option keys that a txt2img request may override for itself.
_REQUEST_OVERRIDES = {"sd_model_checkpoint": "checkpoint", "sd_vae": "vae", "CLIP_stop_at_last_layers": "clip_skip"}


def encode_png(image: Any, infotext: str) -> str:
    """Plain base64 PNG (no data: prefix) with the infotext in the `parameters` chunk, as A1111 returns."""
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("parameters", infotext)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=meta)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(data: str) -> Any:
    """A base64 image, with or without a `data:...;base64,` prefix, as A1111 clients send them."""
    from PIL import Image, UnidentifiedImageError

    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        return Image.open(io.BytesIO(base64.b64decode(data, validate=False)))
    except (ValueError, UnidentifiedImageError) as exc:
        raise ValueError(f"The image could not be decoded: {exc}") from exc


def _request_from_body(body: Txt2ImgBody, services: Services) -> GenerationRequest:
    defaults = services.default_request()
    fields: dict[str, Any] = {
        "prompt": body.prompt or "",
        "negative_prompt": body.negative_prompt or "",
        "sampler_name": body.sampler_name or body.sampler_index or defaults.sampler_name,
        "scheduler": body.scheduler or "Automatic",
        "steps": body.steps if body.steps is not None else defaults.steps,
        "cfg_scale": body.cfg_scale if body.cfg_scale is not None else defaults.cfg_scale,
        "width": body.width or defaults.width,
        "height": body.height or defaults.height,
        "seed": body.seed if body.seed is not None else -1,
        "subseed": body.subseed if body.subseed is not None else -1,
        "subseed_strength": body.subseed_strength or 0.0,
        "seed_resize_from_w": max(body.seed_resize_from_w or 0, 0),
        "seed_resize_from_h": max(body.seed_resize_from_h or 0, 0),
        "styles": tuple(body.styles or ()),
        "batch_size": body.batch_size or 1,
        "n_iter": body.n_iter or 1,
        "clip_skip": defaults.clip_skip,
        "save_images": bool(body.save_images),
    }
    for key, value in (body.override_settings or {}).items():
        field = _REQUEST_OVERRIDES.get(key)
        if field is not None and value is not None:
            fields[field] = int(value) if field == "clip_skip" else str(value)
    return GenerationRequest(**fields)


def _info_json(result: GenerationResult) -> str:
    request = result.request
    return json.dumps({
        "prompt": request.prompt,
        "all_prompts": [request.prompt] * len(result.images),
        "negative_prompt": request.negative_prompt,
        "all_negative_prompts": [request.negative_prompt] * len(result.images),
        "seed": request.seed,
        "all_seeds": result.seeds,
        "subseed": request.subseed,
        "all_subseeds": [request.subseed + i for i in range(len(result.images))],
        "subseed_strength": request.subseed_strength,
        "seed_resize_from_w": request.seed_resize_from_w or -1,
        "seed_resize_from_h": request.seed_resize_from_h or -1,
        "styles": list(request.styles),
        "width": request.width,
        "height": request.height,
        "sampler_name": request.sampler_name,
        "cfg_scale": request.cfg_scale,
        "steps": request.steps,
        "batch_size": request.batch_size,
        "clip_skip": request.clip_skip,
        "sd_model_name": result.model_name,
        "sd_model_hash": result.model_hash,
        "infotexts": result.infotexts,
        "job_timestamp": result.job_timestamp,
        "index_of_first_image": 0,
        "interrupted": result.interrupted,
        "warnings": list(result.warnings),
    })


def _http_error(exc: WebUIError) -> HTTPException:
    status = 404 if isinstance(exc, ModelNotFoundError) else 422 if isinstance(exc, ValidationError) else 400
    return HTTPException(status_code=status, detail=str(exc))


def build_router(services: Services) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["sdapi"])

    @router.post("/txt2img", response_model=ImagesResponse)
    async def txt2img(body: Txt2ImgBody) -> ImagesResponse:
        try:
            request = _request_from_body(body, services)
            result = await asyncio.wrap_future(services.submit_txt2img(request))
        except WebUIError as exc:
            raise _http_error(exc) from exc
        images = [encode_png(img.image, img.infotext) for img in result.images] if body.send_images else []
        return ImagesResponse(images=images, parameters=body.model_dump(), info=_info_json(result))

    @router.get("/sd-models")
    def sd_models() -> list[dict[str, Any]]:
        return services.sd_models()

    @router.get("/sd-vae")
    def sd_vae() -> list[dict[str, Any]]:
        return services.sd_vaes()

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        services.refresh_models()

    @router.post("/refresh-vae")
    def refresh_vae() -> None:
        services.refresh_models()

    @router.get("/samplers")
    def samplers() -> list[dict[str, Any]]:
        return services.samplers()

    @router.get("/schedulers")
    def schedulers() -> list[dict[str, Any]]:
        return [{"name": name.lower().replace(" ", "_"), "label": name} for name in services.schedule_types()]

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return services.get_options()

    @router.post("/options")
    async def set_options(body: OptionsBody) -> None:
        try:
            await asyncio.to_thread(services.set_options, body.model_dump())
        except WebUIError as exc:
            raise _http_error(exc) from exc

    @router.get("/progress")
    def progress() -> dict[str, Any]:
        snap = services.progress()
        eta = snap.eta_seconds()
        return {
            "progress": snap.fraction,
            "eta_relative": eta or 0.0,
            "state": {"skipped": snap.skipped, "interrupted": snap.interrupted, "stopping_generation": False,
                      "job": snap.job, "job_count": snap.job_count, "job_timestamp": "", "job_no": snap.job_no,
                      "sampling_step": snap.sampling_step, "sampling_steps": snap.sampling_steps},
            "current_image": None,
            "textinfo": snap.textinfo or None,
        }

    @router.get("/embeddings")
    def embeddings() -> dict[str, Any]:
        return services.embedding_list()

    @router.get("/prompt-styles")
    def prompt_styles() -> list[dict[str, str]]:
        return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
                for s in services.style_rows()]

    @router.post("/png-info")
    def png_info(body: PngInfoBody) -> dict[str, Any]:
        try:
            image = decode_image(body.image)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return services.png_info(image)

    @router.post("/interrupt")
    def interrupt() -> None:
        services.interrupt()

    @router.post("/skip")
    def skip() -> None:
        services.skip()

    return router


def install_api(app: FastAPI, services: Services) -> None:
    """Mount the /sdapi/v1 routes and turn domain errors into A1111-style JSON errors."""
    app.include_router(build_router(services))

    @app.exception_handler(WebUIError)
    async def _domain_error(request: Request, exc: WebUIError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": type(exc).__name__, "detail": str(exc)})
