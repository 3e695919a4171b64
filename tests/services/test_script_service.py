"""X/Y/Z plot and Prompt matrix through the services facade with tiny real models (32x32, 1-2 steps)."""
from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_data_dir, make_settings
from webui.core.errors import ModelNotFoundError, SamplerError, ValidationError
from webui.core.infotext import parse_infotext
from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.requests import GenerationRequest
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import XyzOptions
from webui.engine.output.png import read_infotext
from webui.testing.lora_files import write_adapter

BASE = GenerationRequest(prompt="a red circle", negative_prompt="blurry", steps=1, width=32, height=32,
                         cfg_scale=5.0, seed=1234, sampler_name="Euler")
SD1, OTHER = "tiny-sd1.safetensors", "tiny-sd1-other.safetensors"


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("xyz"), tiny_checkpoints, ("sd1", "sd1-other"))
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint(SD1)
    pipe = services.runtime.manager.require().pipeline
    for epoch in (2, 4):
        write_adapter(services.settings.paths.lora_dir / f"mylora-00000{epoch}.safetensors", pipe, "lora", seed=epoch)
    yield services
    services.runtime.executor.shutdown()


def grids_folder(services):
    return services.settings.paths.outputs_dir / "txt2img-grids" / date.today().isoformat()


def test_2x3x2_plot_makes_12_images_and_2_plus_1_grids_of_the_right_size(services):
    axes = [AxisInput("Steps", "1-2"), AxisInput("CFG Scale", "3-5"), AxisInput("Seed", "7, 8")]
    result = services.scripts.run_xyz_plot(BASE, axes, XyzOptions(draw_legend=False, include_sub_grids=True,
                                                                  margin_size=2))
    assert len(result.sub_images) == 12 and result.cells_done == result.cells_total == 12
    assert not result.interrupted
    z_grid, *sub_grids = result.grids
    sub_size = (2 * 32 + 2, 3 * 32 + 2 * 2)
    assert [g.image.size for g in sub_grids] == [sub_size, sub_size]
    assert z_grid.image.size == (2 * sub_size[0] + 2, sub_size[1])
    # Every sub-image keeps its own infotext, in grid order (x fastest, then y, then z).
    fields = [parse_infotext(img.infotext).to_generation_fields() for img in result.sub_images]
    assert [(f["steps"], f["cfg_scale"], f["seed"]) for f in fields[:3]] == [(1, 3.0, 7), (2, 3.0, 7), (1, 4.0, 7)]
    assert fields[-1]["seed"] == 8
    assert all(img.path is not None and img.path.is_file() for img in result.sub_images)
    # The grids are saved in txt2img-grids/<date>/ with an infotext naming the script and axes.
    assert z_grid.path.parent == grids_folder(services) and z_grid.path.name.startswith("xyz_grid-")
    saved = parse_infotext(read_infotext(Image.open(z_grid.path)))
    assert saved.params["Script"] == "X/Y/Z plot"
    assert (saved.params["X Type"], saved.params["X Values"]) == ("Steps", "1-2")
    assert (saved.params["Y Type"], saved.params["Y Values"]) == ("CFG Scale", "3-5")
    z_params = (saved.params["Z Type"], saved.params["Z Values"], saved.params["Fixed Z Values"])
    assert z_params == ("Seed", "7, 8", "7, 8")
    assert parse_infotext(sub_grids[1].infotext).params["Seed"] == "8"
    # Without "Include sub-grids" only the Z grid comes back; without Z only the one grid.
    fewer = services.scripts.run_xyz_plot(BASE, axes[:1] + [AxisInput(), AxisInput("Seed", "7, 8")])
    assert len(fewer.grids) == 1 and len(fewer.images) == 1
    flat = services.scripts.run_xyz_plot(BASE, axes[:1], XyzOptions(include_sub_images=True))
    assert len(flat.grids) == 1 and len(flat.images) == 3


def test_keep_minus_one_off_gives_one_fixed_seed_and_on_gives_random_seeds(services):
    base = dataclasses.replace(BASE, seed=-1, save_images=False)
    axes = [AxisInput("CFG Scale", "3, 4, 5")]
    fixed = services.scripts.run_xyz_plot(base, axes)
    seeds = {img.seed for img in fixed.sub_images}
    assert len(seeds) == 1 and seeds.pop() >= 0
    kept = services.scripts.run_xyz_plot(base, axes, XyzOptions(keep_random_seeds=True))
    assert len({img.seed for img in kept.sub_images}) == 3


def test_checkpoint_axis_switches_models_the_minimum_number_of_times(services, monkeypatch):
    loads = []
    real_load = services.runtime.manager.load
    monkeypatch.setattr(services.runtime.manager, "load", lambda entry: loads.append(entry.title) or real_load(entry))
    base = dataclasses.replace(BASE, save_images=False)
    axes = [AxisInput("Checkpoint name", picks=(SD1, OTHER)), AxisInput("Steps", "1, 2"), AxisInput("Seed", "1, 2")]
    result = services.scripts.run_xyz_plot(base, axes, XyzOptions(include_sub_grids=True))
    # Interleaved it would be 8 switches; grouped, the other model loads once and the current one last.
    assert loads == [OTHER, SD1]
    assert services.models.current_checkpoint() == SD1
    models = [parse_infotext(img.infotext).params["Model"] for img in result.sub_images]
    assert models == ["tiny-sd1", "tiny-sd1-other"] * 4  # grid order is kept whatever the run order
    # A checkpoint that is not loaded: loaded once, then the starting model comes back.
    loads.clear()
    services.scripts.run_xyz_plot(base, [AxisInput("Checkpoint name", "tiny-sd1-other"), AxisInput("Steps", "1, 2")])
    assert loads == [OTHER, SD1] and services.models.current_checkpoint() == SD1


def test_vae_axis_and_sampler_axis_run(services):
    result = services.scripts.run_xyz_plot(dataclasses.replace(BASE, save_images=False),
                                   [AxisInput("VAE", picks=("Automatic", "None")),
                                    AxisInput("Sampler", picks=("Euler", "DDIM"))])
    assert len(result.sub_images) == 4 and services.models.current_vae() == "Automatic"
    assert [parse_infotext(i.infotext).params["Sampler"] for i in result.sub_images] == ["Euler", "Euler", "DDIM",
                                                                                         "DDIM"]


def test_prompt_sr_compares_lora_epochs_and_weights(services):
    base = dataclasses.replace(BASE, prompt="a red circle <lora:mylora-000002:1>", save_images=False)
    axes = [AxisInput("Prompt S/R", "mylora-000002, mylora-000004"),
            AxisInput("Prompt S/R", '"<lora:mylora-000002:1>","<lora:mylora-000002:0>"')]
    result = services.scripts.run_xyz_plot(base, axes)
    texts = [img.infotext for img in result.sub_images]
    assert "mylora-000002: " in texts[0] and "mylora-000004: " in texts[1]
    assert "Lora hashes" not in texts[2]  # weight 0 is no LoRA at all
    pixels = [np.asarray(img.image) for img in result.sub_images]
    assert not np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])
    assert not result.warnings


def test_bad_values_fail_before_anything_runs(services, monkeypatch):
    calls = []
    monkeypatch.setattr(type(services.generation), "submit_resolved", lambda *a: calls.append(a))  # what cells run
    with pytest.raises(ModelNotFoundError):
        services.scripts.submit_xyz_plot(BASE, [AxisInput("Checkpoint name", "tiny-sd1, nope")])
    with pytest.raises(SamplerError):
        services.scripts.submit_xyz_plot(BASE, [AxisInput("Sampler", "Euler, Bogus")])
    with pytest.raises(ValidationError, match="Width must be divisible by 8"):
        services.scripts.submit_xyz_plot(BASE, [AxisInput("Size", "32x32, 30x32")])
    with pytest.raises(ValidationError, match="Unknown style"):
        services.scripts.submit_xyz_plot(BASE, [AxisInput("Styles", "missing")])
    assert calls == []


def test_interrupt_stops_the_plot_and_keeps_finished_images(services, monkeypatch):
    generation = type(services.generation)  # cells run on copies of it (with the script's inline executor)
    real_submit = generation.submit_resolved  # each cell is resolved before the plot's job, then submitted
    snapshots = []

    def submit_then_interrupt(self, resolved):
        future = real_submit(self, resolved)
        snapshots.append(services.queue.progress())
        if len(snapshots) == 2:
            assert services.queue.interrupt()  # what the Interrupt button does, between two cells
        return future

    monkeypatch.setattr(generation, "submit_resolved", submit_then_interrupt)
    result = services.scripts.run_xyz_plot(BASE, [AxisInput("Steps", "1, 2"), AxisInput("Seed", "1-3")])
    assert result.interrupted and result.cells_done == 2 and result.cells_total == 6
    assert len(result.sub_images) == 2 and all(img.path.is_file() for img in result.sub_images)
    assert len(result.grids) == 1 and result.grids[0].image.size[0] > 64  # grid of what was made, blanks for the rest
    assert [(s.job_no, s.job_count, s.textinfo) for s in snapshots] == [
        (0, 6, "X/Y/Z plot: image 1 of 6"), (1, 6, "X/Y/Z plot: image 2 of 6")]
    assert not services.runtime.executor.busy


def test_prompt_matrix_with_three_parts_makes_four_images_and_a_grid(services):
    base = dataclasses.replace(BASE, prompt="a circle|red|on grass")
    result = services.scripts.run_prompt_matrix(base, PromptMatrixOptions(different_seeds=True))
    assert [parse_infotext(img.infotext).prompt for img in result.sub_images] == [
        "a circle", "a circle, red", "a circle, on grass", "a circle, red, on grass"]
    assert [img.seed for img in result.sub_images] == [1234, 1235, 1236, 1237]
    (grid,) = result.grids
    assert grid.image.width > 64 and grid.image.height > 64
    assert len(result.images) == 5  # the grid, then every image (A1111)
    saved = parse_infotext(read_infotext(Image.open(grid.path)))
    assert grid.path.name.startswith("prompt_matrix-") and grid.path.parent == grids_folder(services)
    assert saved.prompt == "a circle|red|on grass" and saved.params["Script"] == "Prompt matrix"


def test_xyz_plot_over_img2img_saves_to_img2img_grids(services):
    from webui.core.requests import Img2ImgInputs

    services.options.update({"grid_save": True})
    base = dataclasses.replace(BASE, img2img=Img2ImgInputs((Image.new("RGB", (32, 32), (200, 30, 30)),)),
                               denoising_strength=0.5, save_images=True)
    result = services.scripts.run_xyz_plot(base, [AxisInput("Denoising", "0.3, 0.7")], XyzOptions())
    assert len(result.sub_images) == 2
    assert result.grids[0].path.parent.parent.name == "img2img-grids"
    assert "Denoising strength: 0.3" in result.sub_images[0].infotext
