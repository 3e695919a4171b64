"""Fixed generations whose pixels must not change when the code around them is reorganised.

Why a separate module: `tests/services/data/images_before_resolve.json` was written by running `render` against the
code as it was before requests were resolved in one place (`python3 -m tests.services.bit_identical_cases OUT`);
`test_bit_identical_images.py` runs the same cases against the current code and compares. The cases touch every
path a resolved request takes: LoRA tags, emphasis and prompt editing, batches with variation seeds, hires fix with
a legacy sampler name, inpainting, X/Y/Z (seed axis, prompt S/R, varied seeds), prompt matrix, tiled upscale.

The cases reach the app only through four callables, so the same code runs against any arrangement of services.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.tiled_upscale import TiledUpscaleOptions
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import XyzOptions

LORA_NAME = "keepstyle"
LORA_SEED = 3

TXT2IMG = GenerationRequest(
    prompt=f"a (red:1.3) [circle] <lora:{LORA_NAME}:0.8>, [blue:green:2] background", negative_prompt="(blurry:1.2)",
    sampler_name="Euler a", steps=3, cfg_scale=6.0, width=32, height=32, seed=1234, subseed=99,
    subseed_strength=0.4, batch_size=2, n_iter=2, save_images=False)
HIRES = GenerationRequest(
    prompt="a [cat:dog:0.5] on a ((mat))", negative_prompt="ugly", sampler_name="DPM++ 2M Karras", steps=2,
    cfg_scale=5.0, width=32, height=32, seed=77, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent",
    hr_second_pass_steps=2, denoising_strength=0.6, save_images=False)
SCRIPT_BASE = GenerationRequest(prompt=f"a red circle <lora:{LORA_NAME}:0.5>", negative_prompt="blurry", steps=1,
                                width=32, height=32, cfg_scale=5.0, seed=4321, sampler_name="Euler",
                                save_images=False)
TILED = TiledUpscaleOptions(upscaler="Lanczos", target_size_type="Scale from image size", custom_scale=1.5,
                            tile_width=24, tile_height=24, mask_blur=4, padding=8)


def picture(width: int = 32, height: int = 32) -> Image.Image:
    image = Image.new("RGB", (width, height), (20, 40, 200))
    ImageDraw.Draw(image).ellipse((6, 6, width - 6, height - 6), fill=(220, 30, 30))
    return image


def mask(width: int = 32, height: int = 32) -> Image.Image:
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).rectangle((8, 8, width - 8, height - 8), fill=255)
    return image


def pixel_digest(image: Image.Image) -> str:
    """sha256 of the mode, the size and the raw pixel bytes (PNG encoding settings do not matter)."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}:".encode())
    digest.update(np.asarray(image).tobytes())
    return digest.hexdigest()


def _record(images: Any) -> list[dict[str, Any]]:
    return [{"sha256": pixel_digest(item.image), "seed": item.seed, "infotext": item.infotext} for item in images]


def _script_record(result: Any) -> dict[str, Any]:
    return {"grids": _record(result.grids), "images": _record(result.sub_images)}


@dataclasses.dataclass(frozen=True)
class App:
    """The four ways the cases reach the app."""

    txt2img: Callable[[GenerationRequest], Any]
    xyz: Callable[[GenerationRequest, list[AxisInput], XyzOptions], Any]
    matrix: Callable[[GenerationRequest, PromptMatrixOptions], Any]
    tiled: Callable[[GenerationRequest, TiledUpscaleOptions], Any]


def render(app: App) -> dict[str, Any]:
    """Every case's images (pixel digests, seeds, infotexts), keyed by case name."""
    inpaint = dataclasses.replace(TXT2IMG, prompt="a red circle", batch_size=2, n_iter=1, seed=5, steps=2,
                                  subseed_strength=0.0, denoising_strength=0.7,
                                  img2img=Img2ImgInputs((picture(),), mask=mask(), inpainting_fill=2, mask_blur=2))
    xyz_seed_sr = app.xyz(SCRIPT_BASE, [AxisInput("Seed", "11, 12"), AxisInput("Prompt S/R", "red, blue")],
                          XyzOptions(include_sub_images=True))
    xyz_varied = app.xyz(dataclasses.replace(SCRIPT_BASE, seed=500), [AxisInput("Steps", "1, 2"),
                                                                      AxisInput("CFG Scale", "4, 6")],
                         XyzOptions(include_sub_images=True, vary_seeds=(True, True, False), draw_legend=False))
    matrix = app.matrix(dataclasses.replace(SCRIPT_BASE, prompt="a circle|red|big", seed=900),
                        PromptMatrixOptions(different_seeds=True))
    tiled = app.tiled(dataclasses.replace(SCRIPT_BASE, steps=2, seed=5, denoising_strength=0.3,
                                          img2img=Img2ImgInputs((picture(),))), TILED)
    return {
        "txt2img_lora_emphasis_batch_variation": _record(app.txt2img(TXT2IMG).images),
        "txt2img_hires_legacy_sampler": _record(app.txt2img(HIRES).images),
        "img2img_inpaint_latent_noise": _record(app.txt2img(inpaint).images),
        "xyz_seed_axis_prompt_sr": _script_record(xyz_seed_sr),
        "xyz_varied_seeds": _script_record(xyz_varied),
        "prompt_matrix_different_seeds": _script_record(matrix),
        "tiled_upscale": _script_record(tiled),
    }


def add_lora(services: Any) -> None:
    from webui.testing.lora_files import write_adapter

    pipe = services.runtime.manager.require().pipeline
    write_adapter(services.settings.paths.lora_dir / f"{LORA_NAME}.safetensors", pipe, "lora", seed=LORA_SEED)


def _main(out: Path) -> None:
    """Write the fixture from whatever code is checked out (used once, on the code before the refactor)."""
    import tempfile

    import torch

    from tests.conftest import make_data_dir, make_settings
    from webui.services import build_services
    from webui.testing.tiny_models import write_tiny_checkpoint

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp())
    checkpoint = write_tiny_checkpoint(root / "tiny-sd1.safetensors", "sd1", seed=0, dtype=torch.float16)
    services = build_services(make_settings(make_data_dir(root / "data", {"sd1": checkpoint})))
    services.models.select_checkpoint(checkpoint.name)
    add_lora(services)
    app = App(services.generation.txt2img, services.scripts.run_xyz_plot, services.scripts.run_prompt_matrix,
              lambda base, options: services.scripts.submit_tiled_upscale(base, options).result())
    out.write_text(json.dumps(render(app), indent=1, sort_keys=True) + "\n")
    services.runtime.executor.shutdown()


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
