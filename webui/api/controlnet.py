"""The ControlNet extension's API: units in `alwayson_scripts` and its `/controlnet/*` routes.

Why its own module: clients written for A1111 with the ControlNet extension send units as
`alwayson_scripts: {"controlnet": {"args": [unit, ...]}}` (the script name in any case) and call
`/controlnet/version`, `/controlnet/model_list`, `/controlnet/module_list` and `/controlnet/detect`. The unit
fields are the extension's (docs/FORMATS.md): images as base64 or `{"image": ..., "mask": ...}`, modes as names
or indices. The routes sit behind the same `--api-auth` dependency as `/sdapi/v1`.
"""
from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict

from webui.core.control import (
    CONTROL_MODES,
    DEFAULT_PROCESSOR_RES,
    NO_MODEL,
    NO_MODULE,
    ControlUnit,
    control_mode_name,
    resize_mode_name,
)
from webui.core.errors import ModelNotFoundError, ValidationError, WebUIError
from webui.services.control_service import ControlService

SCRIPT_NAME = "controlnet"
Decode = Callable[[Sequence[str], str], list[Any]]
_NUMBERS = {"weight": float, "threshold_a": float, "threshold_b": float, "guidance_start": float,
            "guidance_end": float}


def control_units_of(alwayson_scripts: Mapping[str, Any] | None, decode: Decode) -> tuple[ControlUnit, ...]:
    """The units of `alwayson_scripts["controlnet"]["args"]` (name matched case-insensitively); `decode` turns
    base64 images into images (it checks their sizes first). Malformed units are a `ValidationError`."""
    script = next((value for key, value in (alwayson_scripts or {}).items()
                   if str(key).strip().lower() == SCRIPT_NAME), None)
    if script is None:
        return ()
    args = script.get("args") if isinstance(script, Mapping) else script
    if not isinstance(args, list):
        raise ValidationError('alwayson_scripts.controlnet must be {"args": [unit, ...]}.')
    return tuple(_unit(item, index, decode) for index, item in enumerate(args))


def _unit(item: Any, index: int, decode: Decode) -> ControlUnit:
    if not isinstance(item, Mapping):
        raise ValidationError(f"ControlNet unit {index} must be an object with the extension's fields.")
    try:
        values: dict[str, Any] = {
            "enabled": bool(item.get("enabled", True)),
            "module": str(item.get("module") or NO_MODULE),
            "model": str(item.get("model") or NO_MODEL),
            "processor_res": _processor_res(item.get("processor_res")),
            "pixel_perfect": bool(item.get("pixel_perfect", False)),
            "resize_mode": resize_mode_name(item.get("resize_mode", "Crop and Resize")),
            "control_mode": _control_mode(item),
        }
        for name, convert in _NUMBERS.items():
            if item.get(name) is not None:
                values[name] = convert(item[name])
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"ControlNet unit {index}: {exc}") from exc
    image, mask = _images(item, index, decode) if values["enabled"] else (None, None)
    return ControlUnit(image=image, mask=mask, **values)


def _processor_res(value: Any) -> int:
    """-1 (the extension's "default") and missing mean 512."""
    return DEFAULT_PROCESSOR_RES if value is None or int(float(value)) < 0 else int(float(value))


def _control_mode(item: Mapping[str, Any]) -> str:
    if item.get("control_mode") is not None:
        return control_mode_name(item["control_mode"])
    return CONTROL_MODES[2] if item.get("guessmode") else CONTROL_MODES[0]  # the old API's guess mode


def _images(item: Mapping[str, Any], index: int, decode: Decode) -> tuple[Any, Any]:
    """`image` (or the old `input_image`) as base64 or {"image", "mask"}; `mask` (or `mask_image`) beside it."""
    image = item.get("image", item.get("input_image"))
    mask = item.get("mask", item.get("mask_image"))
    if isinstance(image, Mapping):
        image, mask = image.get("image"), image.get("mask", mask)
    texts = [value for value in (image, mask) if value]
    if any(not isinstance(value, str) for value in texts):
        raise ValidationError(f"ControlNet unit {index}: images must be base64 strings.")
    try:
        decoded = decode(texts, f"ControlNet unit {index} image") if texts else []
    except ValueError as exc:  # not an image: a refusal with its reason, like a bad init image
        raise ValidationError(str(exc)) from exc
    image_out = decoded.pop(0) if image else None
    if image_out is not None and image_out.mode not in ("RGB", "RGBA"):  # RGBA: transparent holes mark a mask
        image_out = image_out.convert("RGB")
    mask_out = decoded.pop(0).convert("L") if mask else None
    return image_out, mask_out


def _png(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def detected_map_pngs(maps: Sequence[Any]) -> list[str]:
    """The detected maps as the extension appends them to `images`: plain base64 PNGs."""
    return [_png(image) for image in maps]


class DetectBody(BaseModel):
    """`POST /controlnet/detect` (the extension's field names)."""

    model_config = ConfigDict(extra="allow")

    controlnet_module: str = NO_MODULE
    controlnet_input_images: list[str] = []
    controlnet_masks: list[str] | None = None
    controlnet_processor_res: float = DEFAULT_PROCESSOR_RES
    controlnet_threshold_a: float = -1
    controlnet_threshold_b: float = -1
    low_vram: bool = False


def _status(exc: WebUIError) -> int:
    return 404 if isinstance(exc, ModelNotFoundError) else 422 if isinstance(exc, ValidationError) else 400


def build_controlnet_router(control: ControlService, decode: Decode,
                            auth: Callable[..., None] | None = None) -> APIRouter:
    """`/controlnet/*`, behind `--api-auth` when given (the dependency `/sdapi/v1` uses)."""
    router = APIRouter(prefix="/controlnet", tags=["controlnet"], dependencies=[Depends(auth)] if auth else [])

    @router.get("/version")
    def version() -> dict[str, int]:
        return {"version": control.version()}

    @router.get("/model_list")
    def model_list(update: bool = True) -> dict[str, list[str]]:
        return {"model_list": control.model_list()}

    @router.get("/module_list")
    def module_list(alias_names: bool = False) -> dict[str, Any]:
        return {"module_list": control.module_list(alias_names), "module_detail": control.module_detail(alias_names)}

    @router.post("/detect")
    async def detect(body: DetectBody) -> dict[str, Any]:
        try:
            images = await asyncio.to_thread(decode, body.controlnet_input_images, "ControlNet input image")
            masks = await asyncio.to_thread(decode, body.controlnet_masks, "ControlNet mask") \
                if body.controlnet_masks else None
            unit = ControlUnit(module=body.controlnet_module, processor_res=int(body.controlnet_processor_res),
                               threshold_a=body.controlnet_threshold_a, threshold_b=body.controlnet_threshold_b)
            maps = await asyncio.wrap_future(await asyncio.to_thread(
                control.submit_detect, unit, [image.convert("RGB") for image in images], masks))
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except WebUIError as exc:
            raise HTTPException(status_code=_status(exc), detail=str(exc)) from exc
        return {"images": await asyncio.to_thread(detected_map_pngs, maps), "info": "Success"}

    return router
