"""Ultimate SD upscale: the runner with a stand-in generator (exact checks of the pasting), then end to end through
the services with the tiny SD1 model (size, saving, infotext, upscalers) and the shipped demo model (seams)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from webui.core.errors import ModelNotFoundError, ValidationError
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.results import GeneratedImage
from webui.core.tile_plan import seam_lines
from webui.core.tiled_upscale import TiledUpscaleOptions, plan_tiled_upscale
from webui.engine.output.png import read_infotext
from webui.engine.upscale.tiled_redraw import run_tiled_upscale
from webui.engine.upscale.upscalers import UpscalerLibrary

BASE = GenerationRequest(prompt="a red circle", steps=2, width=64, height=64, seed=5, sampler_name="Euler",
                         cfg_scale=5, denoising_strength=0.3)
SMOOTH_OPTIONS = TiledUpscaleOptions(upscaler="Lanczos", target_size_type="Scale from image size", custom_scale=2,
                                     tile_width=32, tile_height=32, mask_blur=8, padding=16)
# The same run pasted with hard edges: no blur, no context, each tile generated on its own.
HARD_PASTE = dataclasses.replace(SMOOTH_OPTIONS, mask_blur=0, padding=0)


def smooth_picture(width: int = 64, height: int = 64) -> Image.Image:
    """Gentle colour ramps, slanted so that 8-bit rounding falls differently on every row and column: any edge in
    the result comes from the tiling, not from the picture."""
    y, x = np.mgrid[0:height, 0:width] * (64 / max(width, height))
    rgb = np.stack([20 + 2.5 * x + 0.6 * y, 20 + 0.6 * x + 2.5 * y, 120 + 40 * np.sin(0.09 * (x + y))], -1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def seam_ratio(image: Image.Image, tile: int) -> float:
    """How much larger the colour step across a tile seam is than the steps beside it, averaged along the seam;
    the largest over all seams. "Beside" is 2, 4, 6 and 8 pixels away on both sides: steps an even distance away,
    because a x2 upscale of an 8-bit picture alternates larger and smaller steps. About 1 when a seam cannot be
    told from the picture around it; a tile pasted with a hard edge puts its whole difference from its neighbour
    into one step and raises it far above 1."""
    pixels = np.asarray(image.convert("RGB")).astype(float)
    grid_lines = seam_lines(plan_tiled_upscale(image.size, dataclasses.replace(
        SMOOTH_OPTIONS, tile_width=tile, tile_height=tile)).grid)
    ratios = []
    for axis, lines in ((1, grid_lines[0]), (0, grid_lines[1])):
        steps = np.abs(np.diff(pixels, axis=axis)).mean(axis=(2, 1 - axis))  # one value per column / row gap
        for line in lines:
            beside = [steps[line - 1 + k] for k in (-8, -6, -4, -2, 2, 4, 6, 8)]
            ratios.append(steps[line - 1] / max(float(np.mean(beside)), 0.25))
    return float(max(ratios))


class BiasedGenerator:
    """Stands in for img2img: returns the crop with a colour shift of its own (as independent generations differ),
    and records the requests."""

    def __init__(self):
        self.requests: list[GenerationRequest] = []

    def __call__(self, request: GenerationRequest) -> GeneratedImage:
        self.requests.append(request)
        shift = 25 if len(self.requests) % 2 else -25
        crop = np.asarray(request.img2img.init_images[0]).astype(int) + shift
        return GeneratedImage(Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)), request.seed, "info")


def run_fake(options: TiledUpscaleOptions, source: Image.Image | None = None):
    source = source or smooth_picture()
    size = options.target_size(source.size, (BASE.width, BASE.height))
    plan = plan_tiled_upscale(size, options)
    generator = BiasedGenerator()
    output = run_tiled_upscale(source, BASE, options, plan, UpscalerLibrary((), torch.device("cpu")), generator,
                               lambda: False)
    return output, plan, generator


def test_each_tile_is_redrawn_once_as_an_inpaint_of_its_own_crop():
    output, plan, generator = run_fake(dataclasses.replace(SMOOTH_OPTIONS, redraw_mode="Chess"))
    assert output.upscaled.size == (128, 128) and output.seams_fixed is None
    assert output.patches_done == len(generator.requests) == plan.patch_count == 16
    for request, patch in zip(generator.requests, plan.patches, strict=True):
        inputs = request.img2img
        crop = inputs.init_images[0]
        assert (request.width, request.height) == crop.size and crop.width % 8 == 0 and crop.height % 8 == 0
        assert inputs.mask.size == crop.size and inputs.mask_blur == 0 and inputs.inpainting_fill == 1
        assert request.seed == BASE.seed and request.denoising_strength == 0.3 and not request.save_images
        # The mask covers the tile plus the blur's reach, and the crop adds the padding around it.
        hard = np.asarray(inputs.mask) > 0
        assert hard.sum() >= patch.rect.width * patch.rect.height
        assert crop.width >= min(128, patch.rect.width + 16) and crop.height >= min(128, patch.rect.height + 16)


def test_blended_tiles_leave_no_seams_and_the_check_catches_hard_edges():
    smooth, _, _ = run_fake(SMOOTH_OPTIONS)
    hard, _, _ = run_fake(HARD_PASTE)
    plain = smooth_picture().resize((128, 128), Image.Resampling.LANCZOS)
    assert seam_ratio(plain, 32) < 1.2  # the criterion on an untouched upscale
    assert seam_ratio(smooth.upscaled, 32) < 1.5
    assert seam_ratio(hard.upscaled, 32) > 4  # deliberately broken paste: the same criterion fails


def test_seams_fix_passes_redraw_bands_and_half_tiles_with_their_own_settings():
    options = dataclasses.replace(SMOOTH_OPTIONS, seams_fix_type="Band pass", seams_fix_width=16,
                                  seams_fix_denoise=0.2, seams_fix_padding=8)
    output, plan, generator = run_fake(options)
    assert output.seams_fixed is not None and output.seams_fixed.size == output.upscaled.size
    seams = generator.requests[16:]
    assert len(seams) == len(plan.seams) == 3 + 3
    assert all(request.denoising_strength == 0.2 for request in seams)
    assert seams[0].height == 128  # a vertical band spans the canvas
    half, plan, generator = run_fake(dataclasses.replace(options, seams_fix_type="Half tile offset pass"))
    assert len(generator.requests) == 16 + len(plan.seams) == 16 + 3 * 4 + 4 * 3
    nothing, _, generator = run_fake(dataclasses.replace(options, redraw_mode="None", seams_fix_type="None"))
    assert generator.requests == [] and nothing.upscaled.size == (128, 128)


# ----------------------------------------------------------------------------------------------------------------
# Through the services, tiny SD1 model


def img2img(source: Image.Image, **fields) -> GenerationRequest:
    return dataclasses.replace(BASE, img2img=Img2ImgInputs((source,)), **fields)


def test_script_gives_the_requested_size_saved_with_infotext(sd1_services):
    folder = sd1_services.settings.paths.outputs_dir / "img2img-images"
    before = set(folder.rglob("*.png"))
    options = dataclasses.replace(SMOOTH_OPTIONS, custom_scale=1.5, tile_width=40, tile_height=0)
    result = sd1_services.scripts.submit_tiled_upscale(img2img(smooth_picture(48, 40)), options).result()
    assert result.cells_done == result.cells_total == 2 * 2 and not result.interrupted
    (image,) = result.images
    assert image.image.size == (72, 64) and image.seed == 5
    saved = set(folder.rglob("*.png")) - before
    assert saved == {image.path}  # the result only, not the tiles
    infotext = read_infotext(Image.open(image.path))
    assert infotext == image.infotext
    params = parse_infotext(infotext).params
    assert params["Size"] == "72x64" and params["Denoising strength"] == "0.3" and params["Seed"] == "5"
    assert params["Ultimate SD upscale upscaler"] == "Lanczos" and params["Ultimate SD upscale tile_width"] == "40"
    assert params["Model"] == "tiny-sd1" and params["Sampler"] == "Euler"


def test_chess_with_seams_fix_returns_both_images_saved_as_asked(sd1_services):
    options = dataclasses.replace(SMOOTH_OPTIONS, redraw_mode="Chess", seams_fix_type="Half tile offset pass",
                                  target_size_type="Custom size", custom_width=64, custom_height=64,
                                  save_upscaled_image=False, save_seams_fix_image=True)
    result = sd1_services.scripts.submit_tiled_upscale(img2img(smooth_picture(32, 32), seed=-1), options).result()
    upscaled, fixed = result.images
    assert upscaled.image.size == fixed.image.size == (64, 64)
    assert upscaled.path is None and fixed.path is not None
    assert upscaled.seed == fixed.seed != -1
    assert result.cells_done == 4 + 2 + 2
    assert "Ultimate SD upscale seams_fix_type: Half tile offset pass" in fixed.infotext


def test_model_upscaler_from_the_registry(sd1_services):
    from webui.testing.upscaler_files import write_realesrgan_pth

    write_realesrgan_pth(sd1_services.settings.paths.esrgan_dir / "tiny-x4.pth")
    options = dataclasses.replace(SMOOTH_OPTIONS, upscaler="tiny-x4", redraw_mode="None")
    result = sd1_services.scripts.submit_tiled_upscale(img2img(smooth_picture(24, 16), save_images=False),
                                                       options).result()
    assert result.images[0].image.size == (48, 32) and result.cells_done == 0
    assert "Ultimate SD upscale upscaler: tiny-x4" in result.images[0].infotext


def test_bad_requests_fail_before_anything_runs(sd1_services):
    with pytest.raises(ValidationError, match="needs an input image"):
        sd1_services.scripts.submit_tiled_upscale(BASE, SMOOTH_OPTIONS)
    with pytest.raises(ModelNotFoundError, match="No upscaler named 'nope'"):
        sd1_services.scripts.submit_tiled_upscale(img2img(smooth_picture()), dataclasses.replace(SMOOTH_OPTIONS,
                                                                                        upscaler="nope"))
    with pytest.raises(ValidationError, match="Padding must be between"):
        sd1_services.scripts.submit_tiled_upscale(img2img(smooth_picture()), dataclasses.replace(SMOOTH_OPTIONS,
                                                                                        padding=-1))
    with pytest.raises(ValidationError, match="Steps"):
        sd1_services.scripts.submit_tiled_upscale(img2img(smooth_picture(), steps=0), SMOOTH_OPTIONS)


# ----------------------------------------------------------------------------------------------------------------
# Seams with a trained model (the shipped demo model: its VAE reconstructs, so img2img at 0.3 keeps the picture)


@pytest.fixture(scope="module")
def demo_services(tmp_path_factory):
    from tests.conftest import make_settings
    from webui.services import DEMO_MODEL_PATH, build_services

    if not DEMO_MODEL_PATH.is_file():
        pytest.skip(f"the demo model {DEMO_MODEL_PATH} is not built")
    services = build_services(make_settings(tmp_path_factory.mktemp("usdu-demo"), include_demo_model=True))
    services.models.select_checkpoint(services.models.checkpoint_titles()[0])
    yield services
    services.runtime.executor.shutdown()


def test_no_visible_seams_at_denoising_0_3(demo_services):
    request = img2img(smooth_picture(), prompt="a red circle on a blue background", steps=6, save_images=False)
    smooth = demo_services.scripts.submit_tiled_upscale(request, SMOOTH_OPTIONS).result().images[0].image
    hard = demo_services.scripts.submit_tiled_upscale(request, HARD_PASTE).result().images[0].image
    assert smooth.size == hard.size == (128, 128)
    # Measured: blended 0.87, hard paste 9.2.
    assert seam_ratio(smooth, 32) < 1.5
    assert seam_ratio(hard, 32) > 3  # tiles pasted with hard edges from independent generations
