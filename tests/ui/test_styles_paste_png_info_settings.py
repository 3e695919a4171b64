"""From the UI: styles, the paste button, "Extra" seeds, PNG Info and the Settings tab, driven through
gradio_client against the real app (tiny models, in-process server)."""
from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.styles import ENCODING
from webui.engine.output.png import read_infotext
from webui.ui import paste_plan

STYLES_CSV = "name,prompt,negative_prompt\nframed,\"masterpiece, {prompt}, 8k\",lowres\n"
UNKNOWN_KEYS = {"some_a1111_key": [1, 2], "sd_hypernetwork": "None", "CLIP_stop_at_last_layers": 1}

# A hand-written A1111 infotext: old combined sampler name, quoted values with commas and colons, variation seed.
PASTED = (
    "a photo of a cat, (masterpiece:1.2)\n"
    "with a second prompt line\n"
    "Negative prompt: lowres, blurry\n"
    'Steps: 33, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 123456, Size: 512x768, Model hash: 0123456789, '
    'Model: "cat, dog: v2", Variation seed: 99, Variation seed strength: 0.25, Seed resize from: 256x384, '
    'Clip skip: 2, Lora hashes: "a: 0123456789ab, b: ba9876543210", Version: v1.10.0'
)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("issue3-data"), tiny_checkpoints, ("sd1",))
    (data_dir / "styles.csv").write_text(STYLES_CSV, encoding=ENCODING)
    (data_dir / "config.json").write_text(json.dumps(UNKNOWN_KEYS), encoding="utf-8")
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.executor.shutdown()


def generate(client: Client, **overrides):
    """Positional txt2img arguments (the endpoint's own parameter names as keys) with small, fast defaults."""
    args = {"prompt_v": "a red circle", "negative_v": "", "sampler_v": "Euler a", "schedule_v": "Automatic",
            "steps_v": 2, "width_v": 64, "height_v": 64, "cfg_v": 5, "seed_v": 321, "count_v": 1, "size_v": 1,
            "clip_skip_v": 1, "styles_v": [], "extra_v": False, "subseed_v": -1, "strength_v": 0.0,
            "resize_w_v": 0, "resize_h_v": 0}
    args.update(overrides)
    return client.predict(*args.values(), api_name="/txt2img")


def paste_values(outputs) -> dict:
    """The paste outputs by field name (`{"__type__": "update"}` means "unchanged")."""
    names = [*paste_plan.PASTE_FIELDS, "extra", "checkpoint", "demo_note", "message"]
    return dict(zip(names, outputs, strict=False))


def unchanged(value) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update" and "value" not in value


# ----------------------------------------------------------------------------------------------------------------
# Styles


def test_styles_round_trip_through_the_ui(ui):
    services, client = ui
    styles_file = services.settings.paths.styles_file
    # Save the current prompt as a new style: it appears in both dropdowns.
    selector, picker, name, text, negative, message = client.predict(
        "detailed", "{prompt}, highly detailed", "ugly", ["framed"], api_name="/txt2img_save_prompt_as_style")
    assert "Saved style" in message and name == "detailed"
    assert [c[0] for c in selector["choices"]] == ["framed", "detailed"]
    assert selector["value"] == ["framed"] and picker["value"] == "detailed"
    assert styles_file.read_bytes().startswith(b"\xef\xbb\xbf")
    # Apply to prompt: {prompt} is replaced, a style without it is appended; the selection is cleared.
    prompt, negative, selected = client.predict("a cat", "", ["detailed"], api_name="/txt2img_apply_styles")
    assert (prompt, negative, selected) == ("a cat, highly detailed", "ugly", [])
    prompt, negative, _ = client.predict("a cat", "bad", ["framed", "detailed"], api_name="/txt2img_apply_styles")
    assert prompt == "masterpiece, a cat, 8k, highly detailed"
    assert negative == "bad, lowres, ugly"
    # Edit: picking fills the editor; saving replaces the style in place.
    assert client.predict("detailed", api_name="/txt2img_edit_style") == ("detailed", "{prompt}, highly detailed",
                                                                           "ugly")
    client.predict("detailed", "best quality, {prompt}", "ugly", [], api_name="/txt2img_save_style")
    assert services.styles.style_names() == ["framed", "detailed"]
    assert client.predict("a dog", "", ["detailed"], api_name="/txt2img_apply_styles")[0] == "best quality, a dog"
    backup = styles_file.with_name("styles.csv.bak")
    assert "{prompt}, highly detailed" in backup.read_text(encoding=ENCODING)
    # Delete: gone from the file and the dropdowns (and no longer accepted); the previous file is kept as .bak.
    selector, picker, name, *_rest, message = client.predict("detailed", ["framed", "detailed"],
                                                             api_name="/txt2img_delete_style")
    assert "Deleted" in message and name == ""
    assert [c[0] for c in selector["choices"]] == ["framed"] and selector["value"] == ["framed"]
    assert "detailed" not in styles_file.read_text(encoding=ENCODING)
    assert "best quality" in backup.read_text(encoding=ENCODING)
    with pytest.raises(AppError):
        client.predict("a dog", "", ["detailed"], api_name="/txt2img_apply_styles")
    # Bad input gives a message, not an error.
    assert "needs a name" in client.predict("  ", "x", "", [], api_name="/txt2img_save_prompt_as_style")[-1]
    assert "no style named" in client.predict("nope", [], api_name="/txt2img_delete_style")[-1]


def test_refresh_picks_up_styles_written_elsewhere(ui):
    services, client = ui
    services.styles.save_style("outside", "{prompt}, from elsewhere", "")
    try:
        selector, picker = client.predict([], api_name="/txt2img_refresh_styles")
        assert "outside" in [c[0] for c in selector["choices"]]
        assert "outside" in [c[0] for c in picker["choices"]]
    finally:
        services.styles.delete_style("outside")


def test_generation_with_a_selected_style_records_the_styled_prompt(ui):
    _, client = ui
    gallery, _progress, info, message = generate(client, styles_v=["framed"], negative_v="blurry")
    assert message == ""
    assert "masterpiece, a red circle, 8k<br>Negative prompt: blurry, lowres<br>" in info
    saved = read_infotext(Image.open(gallery[0]["image"]))
    assert saved is not None and saved.startswith("masterpiece, a red circle, 8k\n")


# ----------------------------------------------------------------------------------------------------------------
# Paste button and "Extra" seeds


def test_paste_fills_every_named_field(ui):
    services, client = ui
    values = paste_values(client.predict(PASTED, api_name="/txt2img_paste"))
    assert values["prompt"] == "a photo of a cat, (masterpiece:1.2)\nwith a second prompt line"
    assert values["negative_prompt"] == "lowres, blurry"
    assert (values["sampler_name"], values["scheduler"]) == ("DPM++ 2M", "Karras")
    assert (values["steps"], values["cfg_scale"], values["seed"]) == (33, 6.5, 123456)
    assert (values["width"], values["height"], values["clip_skip"]) == (512, 768, 2)
    assert (values["subseed"], values["subseed_strength"]) == (99, 0.25)
    assert (values["seed_resize_from_w"], values["seed_resize_from_h"]) == (256, 384)
    assert values["extra"] is True
    # The model (a quoted value with a comma and a colon) is not installed: the checkpoint stays, with a note.
    assert unchanged(values["checkpoint"])
    assert "cat, dog: v2" in values["message"] and "0123456789" in values["message"]
    assert services.models.current_checkpoint() == "tiny-sd1.safetensors"


def test_paste_leaves_unnamed_fields_and_clamps_out_of_range_values(ui):
    _, client = ui
    values = paste_values(client.predict("just a prompt", api_name="/txt2img_paste"))
    assert values["prompt"] == "just a prompt"
    assert all(unchanged(values[name]) for name in ("steps", "seed", "width", "sampler_name", "clip_skip"))
    values = paste_values(client.predict("x\nSteps: 200, Sampler: Restart, Seed: 5", api_name="/txt2img_paste"))
    assert values["steps"] == 150 and "Steps 200 is outside" in values["message"]
    assert unchanged(values["sampler_name"]) and "Unknown sampler 'Restart'" in values["message"]
    assert unchanged(values["width"]) and values["seed"] == 5
    assert values["subseed_strength"] == 0.0  # no variation keys in an infotext means "off"
    assert "empty" in paste_values(client.predict("", api_name="/txt2img_paste"))["message"]


def test_paste_switches_to_a_checkpoint_the_infotext_names(ui, tiny_checkpoints):
    services, client = ui
    info = generate(client)[2]
    own_hash = info.split("Model hash: ")[1].split(",")[0]
    shutil.copy(tiny_checkpoints["sd1-other"], services.settings.paths.ckpt_dir / "other.safetensors")
    services.models.refresh_models()
    try:
        text = "a cat\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Model: other"
        values = paste_values(client.predict(text, api_name="/txt2img_paste"))
        assert values["checkpoint"]["value"] == "other.safetensors"
        assert "other.safetensors" in [c[0] for c in values["checkpoint"]["choices"]]
        assert "Switched" in values["message"]
        assert services.models.current_checkpoint() == "other.safetensors"
        # By hash: the file was renamed since the image was made, but its Model hash is known.
        text = f"a cat\nSteps: 3, Sampler: Euler, Seed: 1, Model hash: {own_hash}, Model: old-name"
        values = paste_values(client.predict(text, api_name="/txt2img_paste"))
        assert values["checkpoint"]["value"] == "tiny-sd1.safetensors"
    finally:
        services.models.select_checkpoint("tiny-sd1.safetensors")


def test_extra_seed_options_reach_the_request(ui):
    services, client = ui
    # Hidden ("Extra" unticked) values are ignored, as in A1111.
    _gallery, _progress, info, _message = generate(client, extra_v=False, subseed_v=7, strength_v=0.5)
    assert "Variation seed" not in info
    request = _capture_request(services, client, extra_v=True, subseed_v=7, strength_v=0.5, resize_w_v=128,
                               resize_h_v=96)
    assert (request.subseed, request.subseed_strength) == (7, 0.5)
    assert (request.seed_resize_from_w, request.seed_resize_from_h) == (128, 96)
    request = _capture_request(services, client, extra_v=True, subseed_v=7, strength_v=0.0, resize_w_v=128)
    assert (request.subseed_strength, request.seed_resize_from_w, request.seed_resize_from_h) == (0.0, 0, 0)
    assert client.predict(api_name="/txt2img_random_subseed") == -1
    # Recycle reuses the variation seed of the last image (a random one was resolved and recorded).
    info = generate(client, extra_v=True, subseed_v=-1, strength_v=0.3)[2]
    recorded = int(info.split("Variation seed: ")[1].split(",")[0])
    assert client.predict(api_name="/txt2img_reuse_subseed") == recorded


def _capture_request(services, client, **overrides):
    """The request the UI submits, seen where it enters the task queue (the engine side of variation seeds is
    separate)."""
    seen = []
    original = services.tasks.submit_generation

    def spy(request, *args, **kwargs):
        seen.append(request)
        return original(request, *args, **kwargs)

    services.tasks.submit_generation = spy
    try:
        generate(client, **overrides)
    finally:
        del services.tasks.submit_generation
    return seen[0]


# ----------------------------------------------------------------------------------------------------------------
# PNG Info


def test_png_info_shows_parameters_and_sends_them_to_txt2img(ui):
    _, client = ui
    gallery, *_ = generate(client, prompt_v="a blue square", negative_v="noise", seed_v=4242, steps_v=3,
                           sampler_v="DPM++ 2M", schedule_v="Karras", clip_skip_v=2, cfg_v=6.5)
    html, infotext = client.predict(handle_file(gallery[0]["image"]), api_name="/pnginfo")
    assert infotext.startswith("a blue square\nNegative prompt: noise\nSteps: 3, Sampler: DPM++ 2M")
    assert "Seed: 4242" in html and "<b>parameters</b>" in html
    outputs = client.predict(infotext, api_name="/pnginfo_send_to_txt2img")
    values = paste_values(outputs)
    assert (values["prompt"], values["negative_prompt"]) == ("a blue square", "noise")
    assert (values["steps"], values["seed"], values["cfg_scale"], values["clip_skip"]) == (3, 4242, 6.5, 2)
    assert (values["sampler_name"], values["scheduler"], values["width"], values["height"]) == (
        "DPM++ 2M", "Karras", 64, 64)
    assert unchanged(values["checkpoint"])  # it names the loaded model
    assert outputs[-1] == ""


def test_png_info_of_an_image_without_parameters(ui, tmp_path):
    _, client = ui
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    html, infotext = client.predict(handle_file(str(plain)), api_name="/pnginfo")
    assert infotext == "" and "Nothing found" in html
    assert "no generation parameters" in client.predict("", api_name="/pnginfo_send_to_txt2img")[-1]


# ----------------------------------------------------------------------------------------------------------------
# Settings


SETTINGS = {"samples_save": True, "samples_format": "png", "samples_filename_pattern": "", "grid_save": True,
            "outdir_txt2img_samples": "outputs/txt2img-images", "outdir_img2img_samples": "outputs/img2img-images",
            "outdir_extras_samples": "outputs/extras-images", "CLIP_stop_at_last_layers": 1,
            "quicksettings_list": ["sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"],
            "default_sampler": "Euler a"}


def apply_settings(client: Client, **changes):
    return client.predict(**{**SETTINGS, **changes}, api_name="/apply_settings")


def test_settings_persist_and_change_format_folder_and_pattern(ui):
    services, client = ui
    config = services.settings.paths.config_file
    try:
        result = apply_settings(client, samples_format="jpg", outdir_txt2img_samples="custom-out",
                                samples_filename_pattern="[seed]-[sampler]-[prompt_spaces]-[steps]x[cfg]",
                                grid_save=False)
        assert result[0].startswith("4 settings changed") and "samples_format" in result[0]
        saved = json.loads(config.read_text(encoding="utf-8"))
        assert saved["samples_format"] == "jpg" and saved["grid_save"] is False
        assert saved["some_a1111_key"] == [1, 2] and saved["sd_hypernetwork"] == "None"
        gallery, _progress, info, _message = generate(client, prompt_v="a green: triangle", seed_v=555)
        folder = services.settings.paths.data_dir / "custom-out" / date.today().isoformat()
        files = sorted(folder.glob("*.jpg"))
        assert [f.name for f in files] == ["00000-555-Euler a-a green_ triangle-2x5.0.jpg"]
        text = read_infotext(Image.open(files[0]))
        assert text is not None and text.startswith("a green: triangle\n") and "Seed: 555" in text
        assert "Seed: 555" in info and gallery
        # PNG Info reads it back from the JPEG's EXIF UserComment.
        assert client.predict(handle_file(str(files[0])), api_name="/pnginfo")[1] == text
    finally:
        apply_settings(client)
    assert json.loads(config.read_text(encoding="utf-8"))["samples_format"] == "png"


def test_invalid_settings_show_a_message_and_change_nothing(ui):
    services, client = ui
    before = services.settings.paths.config_file.read_text(encoding="utf-8")
    result = apply_settings(client, samples_filename_pattern="[seed]-[bogus]", samples_format="webp")
    assert result[0].startswith("**Error:**") and "[bogus]" in result[0]
    assert services.options.get("samples_format") == "png"
    assert services.settings.paths.config_file.read_text(encoding="utf-8") == before
    with pytest.raises(AppError):  # Gradio itself refuses values outside a slider's range
        apply_settings(client, CLIP_stop_at_last_layers=13)
    assert apply_settings(client)[0] == "Nothing changed."


def test_an_output_folder_that_cannot_be_created_gives_a_message(ui):
    _, client = ui
    try:
        apply_settings(client, outdir_txt2img_samples="styles.csv/images")  # a file is in the way
        message = generate(client)[3]
        assert "Could not save the images" in message
    finally:
        apply_settings(client)
    assert generate(client)[3] == ""


def test_clip_skip_and_default_sampler_settings(ui):
    services, client = ui
    try:
        result = apply_settings(client, CLIP_stop_at_last_layers=2, default_sampler="DDIM")
        assert result[-1] == 2  # the quicksettings slider follows
        assert services.generation.default_request().clip_skip == 2
        # The default sampler is what a newly loaded page shows.
        from webui.ui.app_ui import build_ui

        blocks = build_ui(services)
        sampler = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "txt2img_sampling")
        assert sampler.value == "DDIM"
    finally:
        apply_settings(client)
