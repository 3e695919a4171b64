"""Frozen request objects. Scripts derive variants with `dataclasses.replace`, never by mutation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webui.core.control import ControlUnit, validate_units
from webui.core.errors import ValidationError
from webui.core.extension_args import ExtensionArgs
from webui.core.limits import LIMITS, check_input_images, image_size_problems, is_finite, job_images_problems

MAX_SIZE = LIMITS.max_side
RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
INPAINT_FILL = ("fill", "original", "latent noise", "latent nothing")


@dataclass(frozen=True)
class Img2ImgInputs:
    """The image side of an img2img/inpaint request (A1111's img2img fields). Images are PIL images (typed
    loosely: core does not import PIL)."""

    init_images: tuple[Any, ...] = ()
    mask: Any = None
    resize_mode: int = 0
    mask_blur: int = 4
    inpainting_fill: int = 1
    inpaint_full_res: bool = False
    inpaint_full_res_padding: int = 32
    inpainting_mask_invert: bool = False

    def validate(self) -> list[str]:
        problems = []
        if not self.init_images:
            problems.append("img2img needs an input image.")
        if not 0 <= self.resize_mode < len(RESIZE_MODES):
            problems.append(f"Resize mode must be 0-{len(RESIZE_MODES) - 1} (got {self.resize_mode}).")
        if not 0 <= self.inpainting_fill < len(INPAINT_FILL):
            problems.append(f"Masked content must be 0-{len(INPAINT_FILL) - 1} (got {self.inpainting_fill}).")
        if not 0 <= self.mask_blur <= 64:
            problems.append(f"Mask blur must be between 0 and 64 (got {self.mask_blur}).")
        images = [*self.init_images, *([self.mask] if self.mask is not None else [])]
        try:
            check_input_images((image.size for image in images), "input image")
        except ValidationError as exc:
            problems.append(str(exc))
        return problems


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one txt2img run needs. `seed == -1` means "pick a random seed" (resolved by the caller
    before the request reaches the engine, so the infotext records the real seed)."""

    prompt: str = ""
    negative_prompt: str = ""
    sampler_name: str = "Euler a"
    scheduler: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_w: int = 0
    seed_resize_from_h: int = 0
    styles: tuple[str, ...] = ()
    batch_size: int = 1
    n_iter: int = 1
    clip_skip: int = 1
    checkpoint: str | None = None
    vae: str | None = None
    save_images: bool = True
    extra_params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    denoising_strength: float = 0.75
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    img2img: Img2ImgInputs | None = None
    control_units: tuple[ControlUnit, ...] = ()
    # Each extension's arguments (its generation controls, alwayson_scripts["<name>"]); see webui/extensions/api.py.
    extension_args: tuple[ExtensionArgs, ...] = ()
    # Flow-matching families (AuraFlow, Flux): the schedule's shift (0 = the model's own) and Flux dev's distilled
    # guidance ("Distilled CFG Scale", beside the real CFG scale). SD models ignore both.
    shift: float = 0.0
    distilled_cfg_scale: float = 3.5

    @property
    def hires_size(self) -> tuple[int, int]:
        """Target size of the hires pass: "resize to" when set (one side 0 keeps the aspect), else "upscale by"."""
        if self.hr_resize_x or self.hr_resize_y:
            width = self.hr_resize_x or round(self.width * self.hr_resize_y / self.height)
            height = self.hr_resize_y or round(self.height * self.hr_resize_x / self.width)
        else:
            width, height = round(self.width * self.hr_scale), round(self.height * self.hr_scale)
        return width // 8 * 8, height // 8 * 8

    def validate(self) -> None:
        """Raise `ValidationError` with a readable message for out-of-range fields."""
        problems = []
        for name in ("width", "height"):
            value = getattr(self, name)
            if value % 8 != 0:
                problems.append(f"{name.capitalize()} must be divisible by 8 (got {value}).")
            elif not 8 <= value <= MAX_SIZE:
                problems.append(f"{name.capitalize()} must be between 8 and {MAX_SIZE} (got {value}).")
        if not problems:
            problems += image_size_problems(self.width, self.height, "The image size")
        if not 1 <= self.steps <= LIMITS.max_steps:
            problems.append(f"Steps must be between 1 and {LIMITS.max_steps} (got {self.steps}).")
        problems += job_images_problems(self.batch_size, self.n_iter)
        if not 0.0 <= self.cfg_scale <= 100.0:
            problems.append(f"CFG scale must be between 0 and 100 (got {self.cfg_scale}).")
        if not 1 <= self.clip_skip <= 12:
            problems.append(f"Clip skip must be between 1 and 12 (got {self.clip_skip}).")
        if self.seed < -1 or self.seed > 2**32 - 1:
            problems.append(f"Seed must be -1 (random) or between 0 and {2**32 - 1} (got {self.seed}).")
        if not 0.0 <= self.denoising_strength <= 1.0:
            problems.append(f"Denoising strength must be between 0 and 1 (got {self.denoising_strength}).")
        if self.enable_hr:
            problems += self._hires_problems()
        if self.img2img is not None:
            problems += self.img2img.validate()
        problems += validate_units(self.control_units)
        if not 0.0 <= self.subseed_strength <= 1.0:
            problems.append(f"Variation strength must be between 0 and 1 (got {self.subseed_strength}).")
        if not 0.0 <= self.shift <= 100.0:
            problems.append(f"Shift must be between 0 (the model's own) and 100 (got {self.shift}).")
        if not 0.0 <= self.distilled_cfg_scale <= 30.0:
            problems.append(f"Distilled CFG Scale must be between 0 and 30 (got {self.distilled_cfg_scale}).")
        for name in ("seed_resize_from_w", "seed_resize_from_h"):
            value = getattr(self, name)
            if value and (value % 8 != 0 or not 8 <= value <= MAX_SIZE):
                problems.append(f"'Resize seed from' sizes must be 0 (off) or a multiple of 8 (got {value}).")
        if problems:
            raise ValidationError(" ".join(problems))

    def _hires_problems(self) -> list[str]:
        """The hires pass's settings and final size. The size is computed only from valid settings: a NaN or
        infinite scale would fail inside `round`, and a huge one would be allocated by the upscaler."""
        problems = []
        for name in ("hr_resize_x", "hr_resize_y"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_SIZE:
                problems.append(f"Hires resize {name[-1]} must be 0 (off) or at most {MAX_SIZE} (got {value}).")
        if not (self.hr_resize_x or self.hr_resize_y) and not (is_finite(self.hr_scale) and
                                                                 1.0 <= self.hr_scale <= 8.0):
            problems.append(f"Hires upscale must be between 1 and 8 (got {self.hr_scale}).")
        if not 0 <= self.hr_second_pass_steps <= LIMITS.max_steps:
            problems.append(f"Hires steps must be between 0 and {LIMITS.max_steps} (got {self.hr_second_pass_steps}).")
        if not problems and self.width % 8 == 0 and self.height % 8 == 0 and self.width and self.height:
            problems += image_size_problems(*self.hires_size, "The hires fix size")
        return problems

    @property
    def total_images(self) -> int:
        return self.batch_size * self.n_iter
