"""ControlNet units in generation, with tiny ControlNets written in the layouts users bring (see
`webui/testing/tiny_controlnet.py`): effect, composition, start/end, modes, families, img2img/inpaint/hires."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tests.engine.control_support import control_services as build_control_services
from tests.engine.control_support import pixels, square, stripes
from webui.core.control import ControlUnit, units_from_params
from webui.core.errors import ModelNotFoundError, ValidationError
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.engine.control.control_lora import ControlBase, module_weights
from webui.engine.control.engine import ControlEngine
from webui.engine.control.library import ControlNetLibrary
from webui.engine.generation.img2img_inputs import resize_image
from webui.engine.runtime.memory import MODEL_OFFLOAD, SEQUENTIAL_OFFLOAD, MemoryOptimizer, MemoryOptions, MemoryPlan
from webui.testing.tiny_controlnet import build_tiny_controlnet, write_tiny_control_lora, write_tiny_controlnet

BASE = GenerationRequest(prompt="a square", steps=3, width=32, height=32, seed=5, sampler_name="Euler",
                         save_images=False, denoising_strength=0.6)


@pytest.fixture(scope="session")
def control_services(tmp_path_factory, tiny_checkpoints):
    """Tiny SD1 and SDXL checkpoints, and ControlNets: SD1 in all three layouts (each with another seed), an SDXL
    one, and a ControlNet-LoRA (Stability's control-lora) for each family."""

    def write(folder: Path) -> None:
        write_tiny_controlnet(folder / "cn-sd1.safetensors", "sd1", layout="diffusers", seed=1)
        write_tiny_controlnet(folder / "cn-sd1-ldm.safetensors", "sd1", layout="ldm", seed=2)
        write_tiny_controlnet(folder / "cn-sd1-folder", "sd1", layout="folder", seed=3)
        write_tiny_controlnet(folder / "cn-sdxl.safetensors", "sdxl", layout="ldm", seed=4)
        write_tiny_control_lora(folder / "control-lora-sd1.safetensors", "sd1", seed=6)
        write_tiny_control_lora(folder / "control-lora-sdxl.safetensors", "sdxl", seed=7, checkpoint_seed=2)

    services = build_control_services(tmp_path_factory.mktemp("controlnet"), tiny_checkpoints, ("sd1", "sdxl"),
                                      write)
    yield services
    services.runtime.executor.shutdown()


def run(services, **fields):
    return services.generation.txt2img(dataclasses.replace(BASE, **fields))


def unit(model: str = "cn-sd1", **fields) -> ControlUnit:
    return ControlUnit(model=model, image=fields.pop("image", square()), **fields)


@pytest.fixture(scope="session")
def plain(control_services):
    return pixels(run(control_services))


def test_weight_zero_is_bit_for_bit_no_control_and_the_image_changes_the_output(control_services, plain):
    assert np.array_equal(pixels(run(control_services, control_units=(unit(weight=0.0),))), plain)
    controlled = pixels(run(control_services, control_units=(unit(),)))
    assert np.abs(controlled - plain).mean() > 1.0
    other = pixels(run(control_services, control_units=(unit(image=stripes()),)))
    assert np.abs(other - controlled).mean() > 1.0


def test_a_disabled_unit_is_ignored(control_services, plain):
    result = run(control_services, control_units=(unit(enabled=False, model="missing"),))
    assert np.array_equal(pixels(result), plain)
    assert "ControlNet" not in result.infotexts[0] and result.control_maps == ()


@pytest.mark.parametrize("model", ["cn-sd1-ldm", "cn-sd1-folder"])
def test_every_file_layout_runs(control_services, plain, model):
    assert np.abs(pixels(run(control_services, control_units=(unit(model),))) - plain).mean() > 1.0


def test_two_units_compose(control_services):
    first, second = unit(), unit("cn-sd1-ldm", image=stripes())
    both = pixels(run(control_services, control_units=(first, second)))
    for alone in (first, second):
        assert np.abs(both - pixels(run(control_services, control_units=(alone,)))).mean() > 0.5


def test_guidance_end_and_start_change_the_result(control_services):
    full = pixels(run(control_services, control_units=(unit(),)))
    assert np.abs(full - pixels(run(control_services, control_units=(unit(guidance_end=0.5),)))).mean() > 0.1
    assert np.abs(full - pixels(run(control_services, control_units=(unit(guidance_start=0.5),)))).mean() > 0.1


def test_each_control_mode_differs_from_balanced(control_services):
    balanced = pixels(run(control_services, control_units=(unit(),)))
    prompt = pixels(run(control_services, control_units=(unit(control_mode="My prompt is more important"),)))
    control = pixels(run(control_services, control_units=(unit(control_mode="ControlNet is more important"),)))
    assert np.abs(balanced - prompt).mean() > 0.1 and np.abs(balanced - control).mean() > 0.1
    assert np.abs(prompt - control).mean() > 0.1


def test_infotext_records_the_units_and_parses_back(control_services):
    sent = unit(module="canny", threshold_a=50.0, threshold_b=150.0, weight=0.8, guidance_end=0.9,
                control_mode="My prompt is more important", resize_mode="Just Resize")
    result = run(control_services, control_units=(sent,))
    (parsed,) = units_from_params(parse_infotext(result.infotexts[0]).params)
    title = control_services.control.model_list()[0]
    assert title.startswith("cn-sd1 [") and parsed.model == title
    assert dataclasses.replace(parsed, model="cn-sd1") == dataclasses.replace(sent, image=None)
    assert len(result.control_maps) == 1 and result.control_maps[0].size == (32, 32)


def test_a_wrong_family_model_is_a_clear_error(control_services):
    with pytest.raises(ValidationError, match=r"'cn-sdxl \[[0-9a-f]{8}\]' is for SDXL models, but the loaded "
                                              r"checkpoint 'tiny-sd1.safetensors' is SD 1.x"):
        run(control_services, control_units=(unit("cn-sdxl"),))
    with pytest.raises(ModelNotFoundError, match="No ControlNet model named 'nope'"):
        run(control_services, control_units=(unit("nope"),))
    with pytest.raises(ValidationError, match="has no control image"):
        run(control_services, control_units=(ControlUnit(model="cn-sd1"),))


def test_the_model_list_filters_by_the_loaded_family(control_services):
    assert control_services.control.models_for_checkpoint()[0] == "None"
    names = [title.rsplit(" [", 1)[0] for title in control_services.control.models_for_checkpoint()[1:]]
    assert names == ["cn-sd1", "cn-sd1-folder", "cn-sd1-ldm", "control-lora-sd1"]
    assert len(control_services.control.model_list()) == 6


def test_img2img_uses_its_input_as_control_image_and_inpaint_and_hires_run(control_services):
    source = square(48)
    img2img = Img2ImgInputs((source,))
    without = pixels(run(control_services, img2img=img2img))
    with_control = run(control_services, img2img=img2img, control_units=(ControlUnit(model="cn-sd1"),))
    assert np.abs(pixels(with_control) - without).mean() > 0.5
    mask = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 24, 48), fill=255)
    inpaint = run(control_services, img2img=Img2ImgInputs((source,), mask=mask),
                  control_units=(ControlUnit(model="cn-sd1", module="inpaint_only"),))
    assert inpaint.images[0].image.size == (32, 32) and len(inpaint.control_maps) == 1
    assert inpaint.control_maps[0].mode == "RGBA"  # the img2img mask travels as the inpaint map's alpha
    kept = np.asarray(resize_image(source, 32, 32, 0))[:, 26:]
    outside = np.asarray(inpaint.images[0].image)[:, 26:].astype(int) - kept  # far from the blurred mask edge
    assert np.abs(outside).max() <= 1  # the input comes back there
    hires = run(control_services, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                control_units=(unit(),))
    assert hires.images[0].image.size == (48, 48)
    assert 'ControlNet 0: "Module: none' in hires.infotexts[0]


def test_the_pipeline_view_shares_the_base_modules(control_services):
    """`from_pipe`: the ControlNet pipeline holds the loaded UNet, VAE and text encoder themselves (no copy)."""
    services = control_services
    pipe = services.runtime.manager.active.pipeline
    folder = services.settings.paths.models_dir / "ControlNet"
    engine = ControlEngine(ControlNetLibrary(folder, lambda: 0), folder / "annotators",
                           services.runtime.manager.memory)
    request = dataclasses.replace(BASE, control_units=(unit(), unit("cn-sd1-ldm")))
    control = engine.prepare(request, pipe, "sd1", "tiny-sd1")
    view, kwargs = control.view(pipe, "txt2img", False, 7.0, (32, 32), {"width": 32})
    assert view.unet is pipe.unet and view.vae is pipe.vae and view.text_encoder is pipe.text_encoder
    assert view.controlnet is control.net and len(view.controlnet.nets) == 2
    assert kwargs["controlnet_conditioning_scale"] == [1.0, 1.0] and len(kwargs["image"]) == 2
    assert kwargs["image"][0].shape == (1, 3, 32, 32)


def test_loaded_controlnets_are_cached_within_the_byte_budget(control_services, tmp_path):
    services = control_services
    pipe = services.runtime.manager.active.pipeline
    folder = services.settings.paths.models_dir / "ControlNet"
    budget = [0]
    library = ControlNetLibrary(folder, lambda: budget[0])
    base = ControlBase(pipe.unet, "tiny-sd1", lambda: module_weights(pipe.unet))
    first = library.load(library.find("cn-sd1"), base, torch.float32)
    assert library.load(library.find("cn-sd1"), base, torch.float32) is first and library.load_count == 1
    budget[0] = 1  # one byte: only the model in use stays
    library.load(library.find("cn-sd1-ldm"), base, torch.float32)
    assert library.cached() == ["cn-sd1-ldm.safetensors"]
    budget[0] = 0
    lora = library.load(library.find("control-lora-sd1"), base, torch.float32)
    assert library.load(library.find("control-lora-sd1"), base, torch.float32) is lora  # same checkpoint: cached
    other = ControlBase(pipe.unet, "tiny-sd1-other", base.weights)
    assert library.load(library.find("control-lora-sd1"), other, torch.float32) is not lora  # built per checkpoint
    assert library.load(library.find("cn-sd1-ldm"), other, torch.float32) is library.load(
        library.find("cn-sd1-ldm"), base, torch.float32)  # a full ControlNet does not depend on the checkpoint


def test_detected_maps_are_saved_next_to_the_images_when_asked(control_services):
    services = control_services
    services.options.set_options({"control_net_detectmap_autosaving": True})
    try:
        result = run(services, save_images=True, control_units=(unit(module="canny"),))
    finally:
        services.options.set_options({"control_net_detectmap_autosaving": False})
    folder = Path(result.images[0].path).parent
    assert len(list(folder.glob("*.png"))) >= 2


def test_xyz_controlnet_axes(control_services, plain):
    from webui.core.xyz_axes import AxisInput

    scripts = control_services.scripts
    base = dataclasses.replace(BASE, control_units=(unit(),))
    result = scripts.run_xyz_plot(base, [AxisInput("[ControlNet] Weight", "0, 1"),
                                         AxisInput("[ControlNet] Model", "cn-sd1, cn-sd1-ldm")])
    cells = [np.asarray(image.image).astype(np.int16) for image in result.sub_images]
    assert len(cells) == 4 and np.array_equal(cells[0], plain)  # weight 0: no control, whatever the model
    assert np.abs(cells[1] - cells[0]).mean() > 1.0 and np.abs(cells[3] - cells[1]).mean() > 0.5
    assert "ControlNet 0" in result.sub_images[1].infotext
    assert scripts.script_choices("controlnet models")[0].startswith("cn-sd1 [")
    ends = scripts.run_xyz_plot(base, [AxisInput("[ControlNet] Guidance End", "0.3, 1")])
    assert not np.array_equal(np.asarray(ends.sub_images[0].image), np.asarray(ends.sub_images[1].image))
    with pytest.raises(ValidationError, match="enable one"):
        scripts.run_xyz_plot(BASE, [AxisInput("[ControlNet] Weight", "0, 1")])


def test_sdxl_checkpoint_with_an_sdxl_controlnet(control_services):
    services = control_services
    services.models.select_checkpoint("tiny-sdxl.safetensors")
    try:
        plain_xl = pixels(run(services))
        controlled = run(services, control_units=(unit("cn-sdxl", control_mode="ControlNet is more important"),),
                         enable_hr=True, hr_scale=1.5, denoising_strength=0.5)
        assert controlled.images[0].image.size == (48, 48)
        first_pass = pixels(run(services, control_units=(unit("cn-sdxl"),)))
        assert np.abs(first_pass - plain_xl).mean() > 0.5
        with pytest.raises(ValidationError, match="is for SD 1.x models, but the loaded checkpoint"):
            run(services, control_units=(unit("cn-sd1"),))
    finally:
        services.models.select_checkpoint("tiny-sd1.safetensors")


class _Offloading(MemoryOptimizer):
    """The plan an offload flag gives on a GPU, carried out on the CPU (accelerate's hooks work there too)."""

    def __init__(self, action: str):
        super().__init__(MemoryOptions())
        self.action = action

    def plan(self, family: str) -> MemoryPlan:
        return MemoryPlan((self.action,))


@pytest.mark.parametrize("action", [SEQUENTIAL_OFFLOAD, MODEL_OFFLOAD])
def test_offload_flags_cover_the_controlnets(control_services, action):
    """--lowvram streams the units' weights (accelerate hooks, weights off the module, only while the job runs);
    --medvram keeps them on the device only during the job. Afterwards the cached models are whole again."""
    services = control_services
    pipe = services.runtime.manager.active.pipeline
    folder = services.settings.paths.models_dir / "ControlNet"
    engine = ControlEngine(ControlNetLibrary(folder, lambda: 0), folder / "annotators", _Offloading(action))
    control = engine.prepare(dataclasses.replace(BASE, control_units=(unit(),)), pipe, "sd1", "tiny-sd1")
    before = {name: value.clone() for name, value in control.net.state_dict().items()}
    inputs = (torch.randn(2, 4, 16, 16), torch.tensor(10), torch.randn(2, 77, 32), [torch.rand(2, 3, 32, 32)], [1.0])
    with torch.inference_mode():
        expected = control.net(*inputs)[1]
        with engine.placed(control, "sd1"):
            streamed = any(param.device.type == "meta" for param in control.net.parameters())
            hooked = any(hasattr(module, "_hf_hook") for module in control.net.modules())
            placed = control.net(*inputs)[1]
    assert (hooked, streamed) == ((True, True) if action == SEQUENTIAL_OFFLOAD else (False, False))
    assert torch.allclose(placed, expected)
    assert not any(hasattr(module, "_hf_hook") for module in control.net.modules())
    after = control.net.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items())


def test_files_that_are_not_controlnets_get_a_clear_message(tmp_path):
    from safetensors.torch import save_file

    from webui.core.errors import ModelLoadError
    from webui.engine.control.loading import read_facts

    lora = tmp_path / "control-lora-canny-rank8.safetensors"
    save_file({"lora_controlnet": torch.zeros(1), "input_blocks.1.0.in_layers.2.up": torch.zeros(4, 2)}, str(lora))
    with pytest.raises(ModelLoadError, match="ControlNet-LoRA but has no hint encoder"):
        read_facts(lora)
    other = tmp_path / "upscaler.safetensors"
    save_file({"body.0.weight": torch.zeros(4, 4, 3, 3)}, str(other))
    with pytest.raises(ModelLoadError, match="is neither a ControlNet nor a T2I-Adapter"):
        read_facts(other)


@pytest.mark.parametrize("inputs", [dict(inpainting_fill=2), dict(inpainting_fill=3),
                                    dict(inpaint_full_res=True, inpaint_full_res_padding=8)],
                         ids=["latent noise", "latent nothing", "only masked"])
def test_inpaint_fills_and_only_masked_run_with_control(control_services, inputs):
    source, mask = square(48), Image.new("L", (48, 48), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 24, 48), fill=255)
    request = dict(img2img=Img2ImgInputs((source,), mask=mask, **inputs), batch_size=2)
    without = pixels(run(control_services, **request))
    controlled = run(control_services, control_units=(unit(image=stripes()),), **request)
    assert len(controlled.images) == 2 and np.abs(pixels(controlled) - without).mean() > 0.3


def test_and_prompts_with_control_are_a_clear_error(control_services):
    from webui.core.errors import GenerationError

    with pytest.raises(GenerationError, match="AND .* cannot be combined with ControlNet"):
        run(control_services, prompt="a AND b", control_units=(unit(),))


def _fresh_engine(services) -> ControlEngine:
    folder = services.settings.paths.models_dir / "ControlNet"
    return ControlEngine(ControlNetLibrary(folder, lambda: 0), folder / "annotators", services.runtime.manager.memory)


def _states_close(model, expected) -> bool:
    """Equal up to the checkpoint's float16 rounding (the test checkpoints are stored in float16; the
    low-rank changes are far larger)."""
    got, want = model.state_dict(), expected.state_dict()
    return got.keys() == want.keys() and all(torch.allclose(got[k], want[k], atol=2e-3) for k in want)


def test_a_control_lora_is_the_controlnet_it_stands_for_and_controls_the_image(control_services, plain, tmp_path):
    expected = write_tiny_control_lora(tmp_path / "same.safetensors", "sd1", seed=6)  # the fixture's file again
    active = control_services.runtime.manager.active
    request = dataclasses.replace(BASE, control_units=(unit("control-lora-sd1"),))
    control = _fresh_engine(control_services).prepare(request, active.pipeline, "sd1", active.entry.title)
    assert _states_close(control.units[0].model, expected)
    assert not _states_close(control.units[0].model, build_tiny_controlnet("sd1", 6))  # the low-rank parts count
    assert np.array_equal(pixels(run(control_services, control_units=(unit("control-lora-sd1", weight=0.0),))),
                          plain)
    controlled = run(control_services, control_units=(unit("control-lora-sd1"),))
    assert np.abs(pixels(controlled) - plain).mean() > 1.0
    assert "Model: control-lora-sd1 [" in controlled.infotexts[0]


def test_a_control_lora_is_built_on_the_checkpoint_without_the_prompts_loras(control_services, tmp_path):
    from webui.testing.lora_files import write_adapter

    active = control_services.runtime.manager.active
    write_adapter(control_services.settings.paths.models_dir / "Lora" / "cl-style.safetensors", active.pipeline,
                  "locon", seed=3)
    run(control_services, prompt="a square <lora:cl-style:1>")
    assert [a.name for a in active.adapters.current] == ["cl-style"]  # still merged after the job
    expected = write_tiny_control_lora(tmp_path / "same.safetensors", "sd1", seed=6)
    request = dataclasses.replace(BASE, control_units=(unit("control-lora-sd1"),))
    on_merged = _fresh_engine(control_services).prepare(request, active.pipeline, "sd1", active.entry.title)
    assert not _states_close(on_merged.units[0].model, expected)  # the LoRA's change would leak in ...
    built = _fresh_engine(control_services).prepare(request, active.pipeline, "sd1", active.entry.title,
                                                    active.adapters.originals)
    assert _states_close(built.units[0].model, expected)  # ... but the checkpoint's own weights are used
    with_both = run(control_services, prompt="a square <lora:cl-style:1>", control_units=(unit("control-lora-sd1"),))
    assert len(with_both.images) == 1 and "<lora:cl-style:1>" in with_both.infotexts[0]


def test_a_control_lora_for_another_family_is_a_clear_error(control_services):
    with pytest.raises(ValidationError, match=r"'control-lora-sdxl \[[0-9a-f]{8}\]' is for SDXL models"):
        run(control_services, control_units=(unit("control-lora-sdxl"),))


def test_a_control_lora_that_does_not_fit_the_checkpoint_names_the_problem(tmp_path):
    from safetensors.torch import load_file, save_file

    from webui.core.errors import ModelLoadError
    from webui.engine.control.control_lora import ControlBase, load_control_lora, module_weights
    from webui.testing.tiny_models import build_tiny_components

    path = tmp_path / "cl.safetensors"
    write_tiny_control_lora(path, "sd1", seed=1)
    unet = build_tiny_components("sd1", 0)["unet"]
    base = ControlBase(unet, "tiny", lambda: module_weights(unet))
    state = load_file(str(path))
    state["input_blocks.9.1.proj_in.up"], state["input_blocks.9.1.proj_in.down"] = torch.zeros(8, 2), torch.zeros(2, 8)
    save_file(state, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelLoadError, match="weights the loaded checkpoint's UNet does not have .*input_blocks.9"):
        load_control_lora(tmp_path / "other.safetensors", base, torch.float32)
    state = load_file(str(path))
    key = next(k for k in state if k.endswith(".up"))
    state[key] = torch.zeros(3, 2)
    save_file(state, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ModelLoadError, match="does not fit the loaded checkpoint"):
        load_control_lora(tmp_path / "shape.safetensors", base, torch.float32)


def test_control_lora_base_weights_are_read_under_lowvram_streaming():
    """`--lowvram` leaves the UNet's parameters on the meta device (accelerate keeps them in its hooks); the
    ControlNet-LoRA's base weights are read from there."""
    from accelerate import cpu_offload
    from accelerate.hooks import remove_hook_from_module

    from webui.testing.tiny_models import build_tiny_components

    unet = build_tiny_components("sd1", 0)["unet"]
    expected = {key: value.clone() for key, value in unet.state_dict().items()}
    cpu_offload(unet, execution_device=torch.device("cpu"))
    try:
        assert any(param.is_meta for param in unet.parameters())
        got = module_weights(unet)
    finally:
        remove_hook_from_module(unet, recurse=True)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
