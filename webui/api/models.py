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
    denoising_strength: float | None = None
    enable_hr: bool | None = False
    hr_scale: float | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = 0
    hr_resize_x: int | None = 0
    hr_resize_y: int | None = 0
    shift: float | None = None  # flow-matching models (AuraFlow, Flux): 0 / null = the model's own shift
    distilled_cfg_scale: float | None = None  # Flux dev's distilled guidance (Forge's field)


class Img2ImgBody(Txt2ImgBody):
    """A1111's img2img: the txt2img fields plus the input image(s) and the inpainting fields."""

    init_images: list[str] | None = None
    resize_mode: int | None = 0
    mask: str | None = None
    mask_blur: int | None = None
    mask_blur_x: int | None = 4
    mask_blur_y: int | None = 4
    inpainting_fill: int | None = 0
    inpaint_full_res: bool | int | None = True
    inpaint_full_res_padding: int | None = 0
    inpainting_mask_invert: int | bool | None = 0
    include_init_images: bool | None = False


class ImagesResponse(BaseModel):
    images: list[str]
    parameters: dict[str, Any]
    info: str


class ExtrasBaseBody(BaseModel):
    """A1111's extras fields shared by the single-image and batch routes (face restoration is not served)."""

    model_config = ConfigDict(extra="allow")

    resize_mode: int | None = 0
    show_extras_results: bool | None = True
    upscaling_resize: float | None = 2.0
    upscaling_resize_w: int | None = 512
    upscaling_resize_h: int | None = 512
    upscaling_crop: bool | None = True
    upscaler_1: str | None = "None"
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float | None = 0.0


class ExtrasSingleBody(ExtrasBaseBody):
    image: str = ""


class ExtrasFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: str
    name: str | None = None


class ExtrasBatchBody(ExtrasBaseBody):
    imageList: list[ExtrasFile] = []  # noqa: N815 - A1111's field name


class OptionsBody(BaseModel):
    model_config = ConfigDict(extra="allow")


class PngInfoBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    image: str = ""
