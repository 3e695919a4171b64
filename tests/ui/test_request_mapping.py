"""The generation tabs and the API describe one request: the same values give the same `GenerationRequest`
through the UI mapping (widget values) and the API mapping (an A1111 body), and the same `ScriptSpec` through the
widget decoder and the `script_name`/`script_args` decoder."""
from __future__ import annotations

import dataclasses

from PIL import Image

from tests.conftest import b64_png
from webui.api.models import Img2ImgBody, Txt2ImgBody
from webui.api.routes import _img2img_request, _request_from_body
from webui.api.script_args import script_spec
from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.requests import GenerationRequest
from webui.core.script_spec import PLAIN, ScriptSpec, XyzPlotOptions
from webui.core.tiled_upscale import SCRIPT_ARGS, TiledUpscaleOptions
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import XyzOptions
from webui.ui.request_fields import SamplingValues, SeedValues
from webui.ui.script_controls import AXIS_VALUES, MATRIX_OPTIONS, XYZ_OPTIONS, script_spec_from_widgets
from webui.ui.tabs.img2img.mapping import InpaintWidgets, img2img_request
from webui.ui.tabs.txt2img.mapping import HiresValues, txt2img_request

UPSCALERS = ["None", "Lanczos", "Nearest"]


# The generation service's default request as the API mapping receives it (the configured clip skip).
API_DEFAULTS = GenerationRequest(clip_skip=1)


def test_txt2img_widgets_and_body_give_the_same_request():
    sampling = SamplingValues("a cat", "blurry", "DDIM", "Karras", 12.0, 640.0, 448.0, 6.5, 2.0, 3.0, 1.0, ["s"])
    seeds = SeedValues(42.0, True, 7.0, 0.25, 512.0, 384.0)
    hires = HiresValues(True, "Lanczos", 5.0, 0.4, 1.5, 0.0, 0.0)
    body = Txt2ImgBody(prompt="a cat", negative_prompt="blurry", sampler_name="DDIM", scheduler="Karras", steps=12,
                       width=640, height=448, cfg_scale=6.5, n_iter=2, batch_size=3, styles=["s"], seed=42,
                       subseed=7, subseed_strength=0.25, seed_resize_from_w=512, seed_resize_from_h=384,
                       enable_hr=True, hr_upscaler="Lanczos", hr_second_pass_steps=5, denoising_strength=0.4,
                       hr_scale=1.5, save_images=True)
    assert txt2img_request(sampling, seeds, hires) == _request_from_body(body, API_DEFAULTS)


def test_defaults_agree_between_a_bare_body_and_untouched_widgets():
    """What neither side sets comes from the one table (save_images aside: the API does not save by default)."""
    from_ui = txt2img_request(SamplingValues(), SeedValues())
    from_api = _request_from_body(Txt2ImgBody(save_images=True), API_DEFAULTS)
    assert from_ui == from_api == GenerationRequest()


def test_img2img_widgets_and_body_give_the_same_request():
    image = Image.new("RGB", (64, 64), "red")
    mask = Image.new("L", (64, 64), 255)
    sampling = SamplingValues("a cat", "", "Euler", "Automatic", 10.0, 64.0, 64.0, 7.0, 1.0, 1.0, 1.0, None)
    widgets = InpaintWidgets("Inpaint upload", None, None, image, mask, "Crop and resize", 6, "Inpaint not masked",
                             "latent noise", "Only masked", 16)
    from_ui = img2img_request(sampling, SeedValues(5.0), 0.6, widgets)
    body = Img2ImgBody(prompt="a cat", sampler_name="Euler", steps=10, width=64, height=64, seed=5,
                       denoising_strength=0.6, init_images=[b64_png(image)], mask=b64_png(mask), resize_mode=1,
                       mask_blur=6, inpainting_fill=2, inpaint_full_res=True, inpaint_full_res_padding=16,
                       inpainting_mask_invert=1, save_images=True)
    from_api = _img2img_request(body, API_DEFAULTS)
    assert from_ui.img2img is not None and from_api.img2img is not None
    assert from_ui.img2img.init_images[0].tobytes() == from_api.img2img.init_images[0].tobytes()
    assert from_ui.img2img.mask.tobytes() == from_api.img2img.mask.convert("L").tobytes()
    without_images = {"init_images": (), "mask": None}
    assert dataclasses.replace(from_ui.img2img, **without_images) == \
        dataclasses.replace(from_api.img2img, **without_images)
    assert dataclasses.replace(from_ui, img2img=None) == dataclasses.replace(from_api, img2img=None)


def _widget_values(name: str, xyz: list | None = None, matrix: list | None = None, upscale: list | None = None):
    return [name, *(xyz or [None] * (AXIS_VALUES + XYZ_OPTIONS)), *(matrix or [None] * MATRIX_OPTIONS),
            *(upscale or [])]


def test_no_script_decodes_to_plain_from_both_sides():
    assert script_spec_from_widgets(_widget_values("None"), lambda: UPSCALERS) == PLAIN
    assert script_spec_from_widgets([], lambda: UPSCALERS) == PLAIN
    assert script_spec(None, None, lambda: UPSCALERS) == script_spec("None", [], lambda: UPSCALERS) == PLAIN


def test_xyz_plot_decodes_the_same_from_widgets_and_script_args():
    axes = ["Steps", "10,20", [], "Sampler", "", ["Euler", "DDIM"], "Nothing", "", []]
    # UI order: legend, keep -1, vary X/Y/Z, sub-images, sub-grids, margin.
    widgets = _widget_values("X/Y/Z plot", [*axes, False, True, True, False, False, True, False, 4])
    # A1111 order: legend, include lone images, sub-grids, no fixed seeds, vary X/Y/Z, margin.
    args = [*axes, False, True, False, True, True, False, False, 4]
    expected = ScriptSpec("X/Y/Z plot", XyzPlotOptions(
        (AxisInput("Steps", "10,20"), AxisInput("Sampler", "", ("Euler", "DDIM")), AxisInput()),
        XyzOptions(draw_legend=False, include_sub_images=True, keep_random_seeds=True, vary_seeds=(True, False, False),
                   margin_size=4)))
    assert script_spec_from_widgets(widgets, lambda: UPSCALERS) == expected
    assert script_spec("X/Y/Z plot", args, lambda: UPSCALERS) == expected


def test_prompt_matrix_decodes_the_same_from_widgets_and_script_args():
    values = [True, False, "negative", "comma", 2]
    expected = ScriptSpec.prompt_matrix(PromptMatrixOptions(True, False, "negative", "comma", 2))
    assert script_spec_from_widgets(_widget_values("Prompt matrix", matrix=values), lambda: UPSCALERS) == expected
    assert script_spec("Prompt matrix", values, lambda: UPSCALERS) == expected


def test_tiled_upscale_decodes_the_same_from_widgets_and_script_args():
    args = [None, 256, 0, 8, 32, 64, 0.35, 16, "Lanczos", True, "Chess", False, 4, "None", "Scale from image size",
            2048, 2048, 3.0]
    assert len(args) == len(SCRIPT_ARGS)
    expected = ScriptSpec.tiled_upscale(TiledUpscaleOptions(upscaler="Lanczos", tile_width=256, redraw_mode="Chess",
                                                            target_size_type="Scale from image size",
                                                            custom_scale=3.0))
    assert script_spec_from_widgets(_widget_values("Ultimate SD upscale", upscale=args[1:]),
                                    lambda: UPSCALERS) == expected
    assert script_spec("Ultimate SD upscale", args, lambda: UPSCALERS) == expected
    # The upscaler list is read only when the upscale script is named (it scans folders).
    assert script_spec("Prompt matrix", [], lambda: 1 / 0).name == "Prompt matrix"
