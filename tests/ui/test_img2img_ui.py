"""From the UI: img2img, inpaint (uploaded mask and painted mask), hires fix, Extras and PNG Info's "Send to
img2img", driven through gradio_client against the real app (tiny SD1 model, 64x64, 2 steps)."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.engine.output.png import read_infotext
from webui.ui import paste_plan


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("issue8-data"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


def picture(path, width: int = 64, height: int = 64) -> str:
    image = Image.new("RGB", (width, height), (20, 40, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, width - 8, height - 8), fill=(220, 30, 30))
    draw.line((0, 0, width, height), fill=(250, 250, 0), width=3)
    image.save(path)
    return str(path)


def img2img(client: Client, **overrides):
    """The img2img endpoint by parameter name, with small, fast defaults (the image inputs have no default)."""
    args = {"mode_v": "img2img", "init_v": None, "editor_v": None, "inpaint_image_v": None, "inpaint_mask_v": None,
            "prompt_v": "a red circle", "negative_v": "", "sampler_v": "Euler", "steps_v": 2, "width_v": 64,
            "height_v": 64, "cfg_v": 5, "denoise_v": 0.5, "seed_v": 11, "count_v": 1, "size_v": 1,
            "clip_skip_v": 1}
    args.update(overrides)
    return predict(client, "/img2img", **args)


def txt2img(client: Client, **overrides):
    args = {"prompt_v": "a red circle", "negative_v": "", "sampler_v": "Euler", "steps_v": 2, "width_v": 64,
            "height_v": 64, "cfg_v": 5, "seed_v": 5, "count_v": 1, "size_v": 1, "clip_skip_v": 1}
    args.update(overrides)
    return predict(client, "/txt2img", **args)


def predict(client: Client, api_name: str, **values):
    """Call an endpoint by parameter name. A parameter the test does not name takes its widget's default, or None
    (an empty widget) where it has none, so widgets other tabs or scripts add later do not break these tests."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    args = [values.pop(p["parameter_name"]) if p["parameter_name"] in values
            else p.get("parameter_default") if p.get("parameter_has_default") else None for p in params]
    assert not values, f"{api_name} has no parameters {sorted(values)}"
    return client.predict(*args, api_name=api_name)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


# ----------------------------------------------------------------------------------------------------------------
# img2img and inpaint


def test_img2img_gives_the_requested_size_and_records_denoising(ui, tmp_path):
    services, client = ui
    source = picture(tmp_path / "wide.png", 96, 72)
    gallery, _progress, info, message = img2img(client, init_v=handle_file(source), width_v=64, height_v=80,
                                                resize_mode_v="Crop and resize", denoise_v=0.45, size_v=2)
    assert message == ""
    assert [Image.open(item["image"]).size for item in gallery] == [(64, 80), (64, 80)]
    assert "Denoising strength: 0.45" in info and "Size: 64x80" in info
    saved = read_infotext(Image.open(gallery[0]["image"]))
    assert saved is not None and "Denoising strength: 0.45" in saved
    folder = services.settings.paths.outputs_dir / "img2img-images"
    assert len(list(folder.rglob("*.png"))) >= 2


def test_inpaint_upload_leaves_unmasked_pixels_unchanged(ui, tmp_path):
    _, client = ui
    source = picture(tmp_path / "source.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    mask.save(tmp_path / "mask.png")
    gallery, _progress, info, message = img2img(
        client, mode_v="Inpaint upload", inpaint_image_v=handle_file(source),
        inpaint_mask_v=handle_file(str(tmp_path / "mask.png")), mask_blur_v=0, denoise_v=0.9,
        fill_v="latent noise")
    assert message == ""
    out, src = pixels(gallery[0]["image"]), pixels(source)
    outside = np.asarray(mask) == 0
    assert np.array_equal(out[outside], src[outside])
    assert not np.array_equal(out[~outside], src[~outside])
    assert "Mask blur: 0" in info and "Masked content: latent noise" in info


def test_inpaint_with_a_painted_mask_and_not_masked_mode(ui, tmp_path):
    _, client = ui
    source = picture(tmp_path / "source.png")
    strokes = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(strokes).rectangle((0, 0, 31, 63), fill=(255, 255, 255, 255))  # the left half painted
    strokes.save(tmp_path / "layer.png")
    editor = {"background": handle_file(source), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": None}
    gallery, *_rest, message = img2img(client, mode_v="Inpaint", editor_v=editor, mask_blur_v=0, denoise_v=0.9)
    assert message == ""
    out, src = pixels(gallery[0]["image"]), pixels(source)
    assert np.array_equal(out[:, 32:], src[:, 32:])  # unpainted half unchanged
    assert not np.array_equal(out[:, :32], src[:, :32])
    # "Inpaint not masked" changes the other half.
    gallery, _progress, info, _message = img2img(client, mode_v="Inpaint", editor_v=editor, mask_blur_v=0,
                                                 denoise_v=0.9, mask_mode_v="Inpaint not masked")
    out = pixels(gallery[0]["image"])
    assert np.array_equal(out[:, :32], src[:, :32])
    assert "Mask mode: Inpaint not masked" in info


def test_bad_input_shows_a_clear_message_and_the_server_keeps_working(ui, tmp_path):
    _, client = ui
    message = img2img(client)[-1]
    assert "needs an input image" in message
    source = picture(tmp_path / "source.png")
    editor = {"background": handle_file(source), "layers": [], "composite": None}
    assert "needs a mask" in img2img(client, mode_v="Inpaint", editor_v=editor)[-1]
    assert "both an image and a mask" in img2img(client, mode_v="Inpaint upload",
                                                 inpaint_image_v=handle_file(source))[-1]
    assert "divisible by 8" in img2img(client, init_v=handle_file(source), width_v=68)[-1]
    gallery, *_rest, message = img2img(client, init_v=handle_file(source))
    assert message == "" and len(gallery) == 1


def test_img2img_paste_fills_denoising_and_mask_blur(ui):
    _, client = ui
    text = "a cat\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 9, Size: 64x64, Denoising strength: 0.3, Mask blur: 6"
    outputs = client.predict(text, api_name="/img2img_paste")
    values = dict(zip(paste_plan.IMG2IMG_PASTE_FIELDS, outputs, strict=False))
    assert (values["prompt"], values["seed"], values["steps"]) == ("a cat", 9, 3)
    assert (values["denoising_strength"], values["mask_blur"]) == (0.3, 6)


# ----------------------------------------------------------------------------------------------------------------
# Hires fix


def test_hires_fix_gives_the_upscaled_size_and_hires_keys(ui):
    _, client = ui
    gallery, _progress, info, message = txt2img(client, hr_enable_v=True, hr_upscaler_v="Latent", hr_scale_v=2,
                                                hr_steps_v=1, hr_denoise_v=0.6)
    assert message == ""
    assert Image.open(gallery[0]["image"]).size == (128, 128)
    assert "Hires upscale: 2" in info and "Hires steps: 1" in info and "Hires upscaler: Latent" in info
    assert "Denoising strength: 0.6" in info
    gallery, _progress, info, _message = txt2img(client, hr_enable_v=True, hr_upscaler_v="Lanczos",
                                                 hr_resize_x_v=96, hr_resize_y_v=0, hr_steps_v=1)
    assert Image.open(gallery[0]["image"]).size == (96, 96)
    assert "Hires resize: 96x96" in info and "Hires upscaler: Lanczos" in info
    # Unticked, the hidden hires values change nothing.
    gallery, _progress, info, _message = txt2img(client, hr_enable_v=False, hr_scale_v=3)
    assert Image.open(gallery[0]["image"]).size == (64, 64) and "Hires" not in info


def test_paste_fills_the_hires_fields(ui):
    _, client = ui
    text = ("a cat\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 9, Size: 64x64, Denoising strength: 0.35, "
            "Hires upscale: 1.5, Hires steps: 4, Hires upscaler: Latent (bicubic)")
    values = dict(zip(paste_plan.PASTE_FIELDS, client.predict(text, api_name="/txt2img_paste"), strict=False))
    assert values["enable_hr"] is True
    assert (values["hr_scale"], values["hr_second_pass_steps"], values["hr_upscaler"]) == (1.5, 4, "Latent (bicubic)")
    assert (values["denoising_strength"], values["hr_resize_x"], values["hr_resize_y"]) == (0.35, 0, 0)
    plain = "a dog\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 9, Size: 64x64"
    values = dict(zip(paste_plan.PASTE_FIELDS, client.predict(plain, api_name="/txt2img_paste"), strict=False))
    assert values["enable_hr"] is False
    unknown = f"{plain}, Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: 4x-NotInstalled"
    outputs = client.predict(unknown, api_name="/txt2img_paste")
    values = dict(zip(paste_plan.PASTE_FIELDS, outputs, strict=False))
    assert values["enable_hr"] is True and "value" not in values["hr_upscaler"]
    message = outputs[len(paste_plan.PASTE_FIELDS) + 3]  # fields, extra seed, checkpoint, demo note, message
    assert "4x-NotInstalled" in message


# ----------------------------------------------------------------------------------------------------------------
# Extras


def extras(client: Client, **values):
    """The Extras endpoint with empty sources except those named (the widgets have no default)."""
    args = {"image_v": None, "files_v": None, "input_dir_v": "", "output_dir_v": ""}
    return predict(client, "/extras", **{**args, **values})


def test_extras_single_and_batch(ui, tmp_path):
    services, client = ui
    folder = services.settings.paths.outputs_dir / "extras-images"
    before = set(folder.glob("*.png")) if folder.is_dir() else set()
    first = picture(tmp_path / "a.png", 40, 30)
    second = picture(tmp_path / "b.png", 30, 40)
    gallery, _progress, info, message = extras(client, source_v="Single Image", image_v=handle_file(first),
                                               resize_mode_v="Scale by", scale_v=2, upscaler_1_v="Lanczos")
    assert message == "" and "Postprocess upscale by: 2" in info
    assert Image.open(gallery[0]["image"]).size == (80, 60)
    gallery, _progress, info, message = extras(
        client, source_v="Batch Process", files_v=[handle_file(first), handle_file(second)],
        resize_mode_v="Scale to", width_v=96, height_v=64, crop_v=True, upscaler_1_v="Lanczos",
        upscaler_2_v="Nearest", visibility_v=0.5)
    assert message == ""
    assert [Image.open(item["image"]).size for item in gallery] == [(96, 64), (96, 64)]
    assert "Postprocess upscaler 2: Nearest" in info
    new = set(folder.glob("*.png")) - before
    assert len(new) == 3
    assert all("Postprocess upscaler: Lanczos" in (read_infotext(Image.open(p)) or "") for p in new)


def test_extras_batch_from_directory_and_bad_input(ui):
    services, client = ui
    source = services.settings.paths.data_dir / "to-upscale"
    source.mkdir()
    picture(source / "one.png", 32, 32)
    picture(source / "two.png", 32, 24)
    (source / "notes.txt").write_text("not an image")
    gallery, _progress, _info, message = extras(client, source_v="Batch from Directory", input_dir_v="to-upscale",
                                                output_dir_v="upscaled", resize_mode_v="Scale by", scale_v=1.5)
    assert message == ""
    saved = sorted((services.settings.paths.data_dir / "upscaled").glob("*.png"))
    assert [Image.open(p).size for p in saved] == [(48, 48), (48, 36)] and len(gallery) == 2
    # Bad input: a clear message each time, and the server keeps working.
    assert "needs an image" in extras(client, source_v="Single Image")[-1]
    assert "needs image files" in extras(client, source_v="Batch Process")[-1]
    assert "does not exist" in extras(client, source_v="Batch from Directory", input_dir_v="missing")[-1]
    refreshed = client.predict("Lanczos", "None", api_name="/extras_refresh_upscalers")
    assert "Nearest" in [c[0] for c in refreshed[0]["choices"]]


# ----------------------------------------------------------------------------------------------------------------
# PNG Info -> img2img


def test_png_info_sends_fields_and_image_to_img2img(ui):
    _, client = ui
    gallery, *_ = txt2img(client, prompt_v="a blue square", negative_v="noise", seed_v=4242, steps_v=3, cfg_v=6.5)
    path = gallery[0]["image"]
    _html, infotext = client.predict(handle_file(path), api_name="/pnginfo")
    outputs = client.predict(handle_file(path), infotext, api_name="/pnginfo_send_to_img2img")
    values = dict(zip(paste_plan.IMG2IMG_PASTE_FIELDS, outputs, strict=False))
    assert (values["prompt"], values["negative_prompt"]) == ("a blue square", "noise")
    assert (values["seed"], values["steps"], values["cfg_scale"], values["width"]) == (4242, 3, 6.5, 64)
    *_fields, init_image, mode, message = outputs
    assert mode == "img2img" and message == ""
    assert np.array_equal(pixels(init_image), pixels(path))
    # The filled form generates as is.
    gallery, _progress, info, message = img2img(client, init_v=handle_file(init_image), prompt_v=values["prompt"],
                                                seed_v=values["seed"])
    assert message == "" and "Seed: 4242" in info
    # Without an image: a message, nothing filled.
    assert "Drop an image" in client.predict(None, "", api_name="/pnginfo_send_to_img2img")[-1]
