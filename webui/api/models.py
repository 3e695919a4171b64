"""Pydantic shapes of A1111's /sdapi/v1 requests. Unknown fields and nulls are accepted (A1111 clients send
many fields we do not use yet; a null means "default")."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Txt2ImgBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str | None = ""
    negative_prompt: str | None = ""
    styles: list[str] | None = None
    seed: int | None = -1
    subseed: int | None = -1
    subseed_strength: float | None = 0.0
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    sampler_name: str | None = None
    sampler_index: str | None = None
    scheduler: str | None = None
    batch_size: int | None = 1
    n_iter: int | None = 1
    steps: int | None = 20
    cfg_scale: float | None = 7.0
    width: int | None = 512
    height: int | None = 512
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    send_images: bool | None = True
    save_images: bool | None = False
    script_name: str | None = None
    script_args: list[Any] | None = None
    alwayson_scripts: dict[str, Any] | None = None


class ImagesResponse(BaseModel):
    images: list[str]
    parameters: dict[str, Any]
    info: str


class OptionsBody(BaseModel):
    model_config = ConfigDict(extra="allow")


class PngInfoBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    image: str = ""
