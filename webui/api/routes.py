"""A1111-compatible /sdapi/v1 routes. Handlers translate shapes and call `Services`; nothing else."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo
from starlette.requests import Request

from webui.api.controlnet import build_controlnet_router, control_units_of, detected_map_pngs
from webui.api.extension_routes import extension_args_of, install_extension_list_routes
from webui.api.models import (
    ExtrasBaseBody,
    ExtrasBatchBody,
    ExtrasSingleBody,
    ImagesResponse,
    Img2ImgBody,
    OptionsBody,
    PngInfoBody,
    Txt2ImgBody,
)
from webui.api.processed_info import processed_info
from webui.api.queue_routes import QueueApi, install_queue_routes
from webui.api.script_args import script_names, script_spec
from webui.api.security import basic_auth
from webui.core.errors import ModelNotFoundError, ValidationError, WebUIError
from webui.core.limits import LIMITS, check_input_images, size_text
from webui.core.request_builder import build_request
from webui.core.requests import GenerationRequest
from webui.core.results import GenerationResult
from webui.core.tiled_upscale import script_info_args
from webui.core.xyz_axis_types import axis_type_labels
from webui.services import ExtrasRequest, Services
from webui.services.info_service import InfoService
from webui.services.model_service import ModelService
from webui.services.network_service import NetworkService
from webui.services.option_service import OptionsService
from webui.services.queue_service import QueueService
from webui.services.script_service import ScriptService
from webui.services.style_service import StyleService
from webui.services.task_service import TaskService
from webui.services.upscale_service import UpscaleService

log = logging.getLogger(__name__)

# A1111 option keys that a txt2img request may override for itself.
_REQUEST_OVERRIDES = {"sd_model_checkpoint": "checkpoint", "sd_vae": "vae", "CLIP_stop_at_last_layers": "clip_skip"}


def encode_png(image: Any, infotext: str) -> str:
    """Plain base64 PNG (no data: prefix) with the infotext in the `parameters` chunk, as A1111 returns."""

    meta = PngInfo()
    meta.add_text("parameters", infotext)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=meta)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(data: str, what: str = "image") -> Any:
    """A base64 image, with or without a `data:...;base64,` prefix, as A1111 clients send them, opened but not
    decoded: only its header is read, so its size can be checked before its pixels are (`decode_images`)."""

    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        return Image.open(io.BytesIO(base64.b64decode(data, validate=False)))
    except Image.DecompressionBombError as exc:  # PIL's own, far larger limit: still a refusal, not a crash
        raise ValidationError(f"The {what} is too large: images of at most {size_text(LIMITS.max_input_pixels)} "
                              f"are accepted ({exc}).") from exc
    except (ValueError, UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"The {what} could not be decoded: {exc}") from exc


def decode_images(items: Sequence[str], what: str = "image") -> list[Any]:
    """Base64 images, decoded only once their number and the sizes their headers declare are within the limits,
    so a small file that declares a huge image (a decompression bomb) is refused before it is expanded."""

    if len(items) > LIMITS.max_input_images:
        raise ValidationError(f"{len(items)} {what}s were sent; at most {LIMITS.max_input_images} are accepted.")
    images = [decode_image(item, what) for item in items]
    check_input_images((image.size for image in images), what)
    for image in images:
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            raise ValueError(f"The {what} could not be decoded: {exc}") from exc
    return images


def _body_fields(body: Txt2ImgBody) -> dict[str, Any]:
    """The body's A1111 fields for `build_request`; a null takes the body schema's default (A1111 clients send
    nulls for "default", and A1111's API defaults are the schema's)."""
    schema = type(body).model_fields  # declared fields only: unknown extras must not reach request fields
    fields = {name: getattr(body, name) if getattr(body, name) is not None else info.default
              for name, info in schema.items()}
    fields.update(_overrides(body))
    fields["control_units"] = control_units_of(body.alwayson_scripts, decode_images)  # the ControlNet extension's
    return fields


def _overrides(body: Txt2ImgBody) -> dict[str, Any]:
    """`override_settings` keys that map to request fields (the model, VAE and clip skip of this request only)."""
    fields: dict[str, Any] = {}
    for key, value in (body.override_settings or {}).items():
        field = _REQUEST_OVERRIDES.get(key)
        if field is not None and value is not None:
            fields[field] = int(value) if field == "clip_skip" else str(value)
    return fields


def _request_from_body(body: Txt2ImgBody, defaults: GenerationRequest) -> GenerationRequest:
    fields = _body_fields(body)
    fields.pop("init_images", None)  # txt2img: the request is img2img only through `_img2img_request`
    return build_request(fields, defaults)


def _img2img_request(body: Img2ImgBody, defaults: GenerationRequest) -> GenerationRequest:
    """A1111's img2img: base64 images (with or without a data: prefix) and the inpaint options; no hires pass."""
    count = len(body.init_images or ())
    decoded = decode_images([*(body.init_images or ()), *([body.mask] if body.mask else [])], "input image")
    fields = _body_fields(body)
    blur = body.mask_blur if body.mask_blur is not None else max(body.mask_blur_x or 0, body.mask_blur_y or 0)
    fields.update(init_images=tuple(image.convert("RGB") for image in decoded[:count]),
                  mask=decoded[count] if body.mask else None, mask_blur=blur, enable_hr=False)
    return build_request(fields, defaults)


def _extras_request(body: ExtrasBaseBody) -> ExtrasRequest:
    """A1111's extras fields: resize_mode 0 scales by `upscaling_resize`, 1 scales to the given size."""
    resize_to = (body.upscaling_resize_w or 512, body.upscaling_resize_h or 512) if body.resize_mode == 1 else None
    return ExtrasRequest(scale_by=body.upscaling_resize or 2.0, resize_to=resize_to,
                         crop_to_fit=body.upscaling_crop if body.upscaling_crop is not None else True,
                         upscaler_1=body.upscaler_1 or "None", upscaler_2=body.upscaler_2 or "None",
                         upscaler_2_visibility=body.extras_upscaler_2_visibility or 0.0)


def _plain_png(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _progress_payload(queue: QueueService, skip_current_image: bool, task_id: str | None = None) -> dict[str, Any]:
    """A1111's progress shape; `current_image` is a small live preview of the running job's latents; `task_id`
    (ours) names the queued task it reports (None when no task runs)."""
    snap = queue.progress()
    preview = None if skip_current_image or not snap.active else queue.current_preview()
    return {
        "progress": snap.fraction,
        "eta_relative": snap.eta_seconds() or 0.0,
        "state": {"skipped": snap.skipped, "interrupted": snap.interrupted, "stopping_generation": False,
                  "job": snap.job, "job_count": snap.job_count, "job_timestamp": "", "job_no": snap.job_no,
                  "sampling_step": snap.sampling_step, "sampling_steps": snap.sampling_steps},
        "current_image": _plain_png(preview) if preview is not None else None,
        "textinfo": snap.textinfo or None,
        "current_task": task_id,
        "task_id": task_id,
    }


def _info_json(result: GenerationResult) -> str:
    """A1111's `info` string: `Processed.js()`, every key always present."""
    return json.dumps(processed_info(result))


def _http_error(exc: WebUIError) -> HTTPException:
    status = 404 if isinstance(exc, ModelNotFoundError) else 422 if isinstance(exc, ValidationError) else 400
    return HTTPException(status_code=status, detail=str(exc))


@dataclass(frozen=True)
class _GenerationApi:
    """The services the generation routes use (and nothing else of the container)."""

    defaults: Callable[[], GenerationRequest]
    scripts: ScriptService
    upscaler_names: Callable[[], list[str]]
    current_checkpoint: Callable[[], str | None]
    queue: QueueService
    tasks: TaskService
    extension_args: Callable[[Any], tuple] = lambda body: ()  # body -> each extension's ExtensionArgs
    extension_scripts: Callable[[], dict] = dict  # the extensions' scripts by lower-case name

    def defaults_for(self, body: Txt2ImgBody) -> GenerationRequest:
        """The request defaults carrying the body's extension arguments (alwayson_scripts, declared fields)."""
        return dataclasses.replace(self.defaults(), extension_args=self.extension_args(body))


async def _generate(api: _GenerationApi, request: GenerationRequest, script_name: str | None = None,
                    script_args: list[Any] | None = None) -> GenerationResult:
    """Run the request, or the named built-in script over it (its grids first, as A1111 returns them)."""
    try:
        # Off the event loop: a script's plan is expanded and every cell checked (files read) before it queues.
        spec = await asyncio.to_thread(script_spec, script_name, script_args, api.upscaler_names,
                                       api.extension_scripts())
        # Through the task store like every generation: the task is queued, this request waits for it.
        task = await asyncio.to_thread(api.tasks.submit_generation, request, spec, "api")
        result = await asyncio.wrap_future(task.future)
        if spec.is_plain:
            return result
    except (WebUIError, ValueError, TypeError) as exc:
        raise _http_error(exc if isinstance(exc, WebUIError) else ValidationError(str(exc))) from exc
    return GenerationResult(request=request, images=tuple(result.images),
                            model_name=api.current_checkpoint() or "", interrupted=result.interrupted,
                            warnings=tuple(result.warnings))


def _images_response(result: GenerationResult, body: Txt2ImgBody, parameters: dict[str, Any]) -> ImagesResponse:
    images = [encode_png(img.image, img.infotext) for img in result.images] if body.send_images else []
    images += detected_map_pngs(result.control_maps) if body.send_images else []  # after the results, as the ext
    return ImagesResponse(images=images, parameters=parameters, info=_info_json(result))


def _generation_routes(router: APIRouter, api: _GenerationApi) -> None:
    @router.post("/txt2img", response_model=ImagesResponse)
    async def txt2img(body: Txt2ImgBody) -> ImagesResponse:
        try:
            request = _request_from_body(body, api.defaults_for(body))
        except WebUIError as exc:
            raise _http_error(exc) from exc
        result = await _generate(api, request, body.script_name, body.script_args)
        return await asyncio.to_thread(_images_response, result, body, body.model_dump())

    @router.post("/img2img", response_model=ImagesResponse)
    async def img2img(body: Img2ImgBody) -> ImagesResponse:
        try:
            request = await asyncio.to_thread(_img2img_request, body, api.defaults_for(body))
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except WebUIError as exc:
            raise _http_error(exc) from exc
        parameters = body.model_dump()
        if not body.include_init_images:
            parameters.update(init_images=None, mask=None)
        result = await _generate(api, request, body.script_name, body.script_args)
        return await asyncio.to_thread(_images_response, result, body, parameters)

    @router.get("/progress")
    def progress(skip_current_image: bool = False) -> dict[str, Any]:
        return _progress_payload(api.queue, skip_current_image, api.tasks.running_task_id())

    @router.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        api.queue.interrupt()
        return {}  # A1111 answers {} here (and null for /skip)

    @router.post("/skip")
    def skip() -> None:
        api.queue.skip()


def _extras_routes(router: APIRouter, tasks: TaskService) -> None:
    async def run(images: list[Any], body: ExtrasBaseBody) -> list[tuple[Any, Any, str]]:
        try:  # a queued task like every generation; this request waits for it
            task = await asyncio.to_thread(tasks.submit_extras, images, _extras_request(body), False, "api")
            return await asyncio.wrap_future(task.future)
        except WebUIError as exc:
            raise _http_error(exc) from exc

    @router.post("/extra-single-image")
    async def extra_single_image(body: ExtrasSingleBody) -> dict[str, Any]:
        try:
            images = await asyncio.to_thread(decode_images, [body.image])
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except WebUIError as exc:
            raise _http_error(exc) from exc
        (result, _, info), *_ = await run(images, body)
        return {"html_info": info, "image": _plain_png(result) if body.show_extras_results else ""}

    @router.post("/extra-batch-images")
    async def extra_batch_images(body: ExtrasBatchBody) -> dict[str, Any]:
        try:
            images = await asyncio.to_thread(decode_images, [item.data for item in body.imageList])
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except WebUIError as exc:
            raise _http_error(exc) from exc
        results = await run(images, body)
        return {"html_info": results[0][2] if results else "",
                "images": [_plain_png(img) for img, _, _ in results] if body.show_extras_results else []}


def _model_routes(router: APIRouter, models: ModelService, networks: NetworkService,
                  options: OptionsService) -> None:
    @router.get("/sd-models")
    def sd_models() -> list[dict[str, Any]]:
        return models.sd_models()

    @router.get("/sd-vae")
    def sd_vae() -> list[dict[str, Any]]:
        return models.sd_vaes()

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        models.refresh_models()

    @router.post("/refresh-vae")
    def refresh_vae() -> None:
        models.refresh_models()

    @router.get("/loras")
    def loras() -> list[dict[str, Any]]:
        return networks.lora_list()

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        networks.lora_list()  # rescans the LoRA folders

    @router.get("/embeddings")
    def embeddings() -> dict[str, Any]:
        return networks.embedding_list()

    @router.post("/refresh-embeddings")
    def refresh_embeddings() -> None:
        networks.embedding_list()  # rescans the embeddings folder

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return options.get_options()

    @router.post("/options")
    async def set_options(body: OptionsBody) -> None:
        try:
            await asyncio.to_thread(options.set_options, body.model_dump())
        except WebUIError as exc:
            raise _http_error(exc) from exc


def _table_routes(router: APIRouter, info: InfoService, upscale: UpscaleService, styles: StyleService,
                  extension_scripts: Callable[[bool], dict] = lambda img2img: {}) -> None:
    """`extension_scripts(img2img)`: the extensions' scripts offered there, by lower-case name."""
    @router.get("/samplers")
    def samplers() -> list[dict[str, Any]]:
        return info.samplers()

    @router.get("/schedulers")
    def schedulers() -> list[dict[str, Any]]:
        return [{"name": name.lower().replace(" ", "_"), "label": name, "aliases": None, "default_rho": -1,
                 "need_inner_model": False} for name in info.schedule_types()]

    @router.get("/upscalers")
    def upscalers() -> list[dict[str, Any]]:
        return upscale.upscaler_rows()

    @router.get("/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": name} for name in upscale.latent_upscale_modes()]

    @router.get("/scripts")
    def scripts() -> dict[str, list[str]]:
        return {"txt2img": [*script_names(), *extension_scripts(False)],
                "img2img": [*script_names(img2img=True), *extension_scripts(True)]}

    @router.get("/script-info")
    def script_info() -> list[dict[str, Any]]:
        """The scripts and, for X/Y/Z, the axis types in the order integer `script_args` types index; for
        Ultimate SD upscale its positional `script_args` in order (A1111's extension order), with defaults."""

        return [{"name": "x/y/z plot", "is_alwayson": False, "is_img2img": False,
                 "args": [{"label": "axis types", "choices": axis_type_labels()}]},
                {"name": "prompt matrix", "is_alwayson": False, "is_img2img": False, "args": []},
                {"name": "ultimate sd upscale", "is_alwayson": False, "is_img2img": True,
                 "args": script_info_args(upscale.upscaler_names())},
                *({"name": name, "is_alwayson": False, "is_img2img": img2img, "args": []}
                  for img2img in (False, True) for name in extension_scripts(img2img))]

    @router.get("/prompt-styles")
    def prompt_styles() -> list[dict[str, str]]:
        return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
                for s in styles.style_rows()]


def _info_routes(router: APIRouter, info: InfoService, models: ModelService,
                 public_flags: Callable[[], dict[str, Any]]) -> None:
    @router.post("/png-info")
    def png_info(body: PngInfoBody) -> dict[str, Any]:
        try:
            image, = decode_images([body.image])
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except WebUIError as exc:
            raise _http_error(exc) from exc
        return info.png_info(image)

    @router.get("/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        return public_flags()

    @router.get("/memory")
    def memory() -> dict[str, Any]:
        return models.memory()


def build_router(services: Services, auth: Callable[..., None] | None = None) -> APIRouter:
    """Every /sdapi/v1 route, behind `--api-auth` when given."""
    router = APIRouter(prefix="/sdapi/v1", tags=["sdapi"], dependencies=[Depends(auth)] if auth else [])
    _generation_routes(router, _GenerationApi(services.generation.default_request, services.scripts,
                                              services.upscale.upscaler_names, services.models.current_checkpoint,
                                              services.queue, services.tasks, extension_args_of(services.extensions),
                                              services.extensions.script_table))
    _extras_routes(router, services.tasks)
    install_extension_list_routes(router, services.extensions)
    install_queue_routes(router, _queue_api(services))
    _model_routes(router, services.models, services.networks, services.options)
    _table_routes(router, services.info, services.upscale, services.styles,
                  lambda img2img: services.extensions.script_table(img2img))
    _info_routes(router, services.info, services.models, lambda: {
        **services.settings.public_flags(), "precision_in_use": services.models.precision_note()})
    return router


def _queue_api(services: Services) -> QueueApi:
    """The queue routes' bundle: the task service and this module's body and answer conversions."""
    defaults = services.generation.default_request

    def generation_answer(result: GenerationResult) -> tuple[list[str], str]:
        return [encode_png(img.image, img.infotext) for img in result.images], _info_json(result)

    def image_answer(path: str) -> str:
        with Image.open(path) as image:
            return _plain_png(image)

    with_args = extension_args_of(services.extensions)

    def defaults_for(body: Txt2ImgBody) -> GenerationRequest:
        return dataclasses.replace(defaults(), extension_args=with_args(body))

    return QueueApi(tasks=services.tasks, txt2img_request=lambda body: _request_from_body(body, defaults_for(body)),
                    img2img_request=lambda body: _img2img_request(body, defaults_for(body)),
                    extras_request=_extras_request,
                    decode_images=decode_images,
                    script_spec=lambda name, args: script_spec(name, args, services.upscale.upscaler_names,
                                                               services.extensions.script_table()),
                    generation_answer=generation_answer, image_answer=image_answer, http_error=_http_error)


def install_api(app: FastAPI, services: Services) -> None:
    """Mount the /sdapi/v1 routes and turn domain errors into A1111-style JSON errors."""
    credentials = services.settings.security.api_auth
    app.include_router(build_router(services, basic_auth(credentials) if credentials else None))
    app.include_router(build_controlnet_router(services.control, decode_images,
                                               basic_auth(credentials) if credentials else None))

    @app.exception_handler(WebUIError)
    async def _domain_error(request: Request, exc: WebUIError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": type(exc).__name__, "detail": str(exc)})
