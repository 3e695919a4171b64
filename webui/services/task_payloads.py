"""What a stored task holds, in and out: the frozen request (with its images as files in the task's folder) and the
result (image files plus the fields of a `GenerationResult` besides its pixels).

Why apart from the task service: the service decides what runs; this module only turns objects into rows and
files and back, so a task found after a restart is the same request it was when it was queued.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from webui.core.control import ControlUnit
from webui.core.extension_args import ExtensionArgs
from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.results import GeneratedImage, GenerationResult
from webui.core.script_spec import ExtensionScriptOptions, ScriptSpec, XyzPlotOptions
from webui.core.task_codec import class_table, decode_value, encode_value
from webui.core.tiled_upscale import TiledUpscaleOptions
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import XyzOptions
from webui.engine.upscale.postprocess import ExtrasRequest

KIND_TXT2IMG, KIND_IMG2IMG, KIND_EXTRAS = "txt2img", "img2img", "extras"
TASK_CLASSES = class_table((GenerationRequest, Img2ImgInputs, ScriptSpec, XyzPlotOptions, AxisInput, XyzOptions,
                            PromptMatrixOptions, TiledUpscaleOptions, ExtrasRequest, ExtensionArgs,
                            ExtensionScriptOptions, ControlUnit))
_RESULT_FIELDS = ("model_name", "model_hash", "vae_name", "vae_hash", "inpainting_model", "interrupted",
                  "job_timestamp")


@dataclass(frozen=True)
class GenerationPayload:
    """A txt2img/img2img task: the request and the script that runs over it."""

    request: GenerationRequest
    script: ScriptSpec


@dataclass(frozen=True)
class ExtrasPayload:
    """An Extras task: the images, the upscale settings, and whether results go to the extras folder."""

    images: tuple[Any, ...]
    request: ExtrasRequest
    save: bool


def encode_payload(payload: GenerationPayload | ExtrasPayload, folder: Path) -> Any:
    """The payload as JSON-able data; its images are written to `folder` as PNG files."""
    counter = iter(range(1_000_000))

    def save(image: Any) -> str:
        name = f"input-{next(counter)}.png"
        image.save(folder / name, format="PNG")
        return name

    if isinstance(payload, GenerationPayload):
        return {"request": encode_value(payload.request, save), "script": encode_value(payload.script, save)}
    return {"images": encode_value(payload.images, save), "request": encode_value(payload.request, save),
            "save": payload.save}


def decode_payload(kind: str, data: Any, folder: Path) -> GenerationPayload | ExtrasPayload:
    """The payload `encode_payload` stored for a task of `kind`."""

    def load(name: str) -> Any:
        with Image.open(folder / Path(name).name) as image:
            image.load()
            return image.copy()

    if not isinstance(data, dict):
        raise ValueError("The stored task has no readable request.")
    if kind == KIND_EXTRAS:
        return ExtrasPayload(tuple(decode_value(data["images"], TASK_CLASSES, load)),
                             decode_value(data["request"], TASK_CLASSES, load), bool(data.get("save")))
    return GenerationPayload(decode_value(data["request"], TASK_CLASSES, load),
                             decode_value(data["script"], TASK_CLASSES, load))


def keep_images(images: tuple[GeneratedImage, ...], folder: Path) -> tuple[str, ...]:
    """The result files: the output writer's file when it saved one, else a PNG (with its infotext) written to
    the task's folder, so a finished task keeps its images after a restart even when saving was off."""
    paths = []
    for index, item in enumerate(images):
        if item.path is not None and Path(item.path).is_file():
            paths.append(str(item.path))
            continue
        target = folder / f"result-{index}.png"
        meta = PngInfo()
        meta.add_text("parameters", item.infotext)
        item.image.save(target, format="PNG", pnginfo=meta)
        paths.append(str(target))
    return tuple(paths)


def keep_extras(rows: list[tuple[Any, Any, str]], folder: Path) -> tuple[str, ...]:
    """Extras results: the saved file, or a PNG in the task's folder."""
    paths = []
    for index, (image, path, _) in enumerate(rows):
        if path is not None and Path(path).is_file():
            paths.append(str(path))
        else:
            target = folder / f"result-{index}.png"
            image.save(target, format="PNG")
            paths.append(str(target))
    return tuple(paths)


def result_fields(result: GenerationResult) -> dict[str, Any]:
    """What a `GenerationResult` says besides its pixels, for the task row."""
    return {"infotexts": list(result.infotexts), "seeds": list(result.seeds), "warnings": list(result.warnings),
            **{name: getattr(result, name) for name in _RESULT_FIELDS}}


def rebuilt_result(request: GenerationRequest, fields: dict[str, Any], paths: list[str]) -> GenerationResult:
    """A finished task's `GenerationResult` read back from its row and files (images whose file is gone are left
    out, with a warning)."""
    infotexts, seeds = list(fields.get("infotexts") or []), list(fields.get("seeds") or [])
    images, warnings = [], list(fields.get("warnings") or [])
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image.load()
                pixels = image.copy()
        except OSError:
            warnings.append(f"The result file {Path(path).name} is gone.")
            continue
        images.append(GeneratedImage(pixels, int(seeds[index]) if index < len(seeds) else request.seed,
                                     infotexts[index] if index < len(infotexts) else "", Path(path)))
    return GenerationResult(request=request, images=tuple(images), warnings=tuple(warnings),
                            **{name: fields[name] for name in _RESULT_FIELDS if name in fields})
