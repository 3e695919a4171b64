"""Every generation path resolves its request once: a -1 seed is drawn once per job (batches, X/Y/Z cells, prompt
matrix, tiled upscale, the HTTP API) and the prompt is parsed once per image, with the tiny SD1 model.

Draws are counted through the seed source `build_services` takes; parses with a spy on
`webui.core.prompt_parser.parse_full`, the one function that takes a prompt apart (and separates its LoRA tags).
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.tiled_upscale import TiledUpscaleOptions
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import XyzOptions

RANDOM = GenerationRequest(prompt="a red circle <lora:missing:0.5>", steps=1, width=32, height=32, seed=-1,
                           subseed=-1, sampler_name="Euler", save_images=False)


class CountingSeeds(random.Random):
    """The app's seed source in these tests: seeded, and counting the random seeds drawn from it."""

    def __init__(self) -> None:
        super().__init__(5)
        self.draws = 0

    def randrange(self, *args, **kwargs) -> int:  # type: ignore[override]
        self.draws += 1
        return super().randrange(*args, **kwargs)


@pytest.fixture(scope="module")
def seeds() -> CountingSeeds:
    return CountingSeeds()


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_checkpoints, seeds):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("resolve"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, nowebui=True), seeds=seeds)
    services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
    yield services
    services.runtime.executor.shutdown()


def test_a_batch_job_draws_its_seeds_once_and_parses_once(services, seeds, parses):
    before = seeds.draws
    result = services.generation.txt2img(dataclasses.replace(RANDOM, batch_size=2, n_iter=2))
    assert seeds.draws - before == 2  # the seed and the variation seed, for all four images
    first = result.request.seed
    assert first >= 0 and result.seeds == [first, first + 1, first + 2, first + 3]
    assert f"Seed: {first + 3}," in result.infotexts[3]
    assert parses == [RANDOM.prompt]  # one parse; its LoRA call was looked up from it
    assert any("missing" in warning for warning in result.warnings)


def test_hires_and_img2img_parse_once_per_image(services, seeds, parses):
    hires = services.generation.txt2img(dataclasses.replace(RANDOM, enable_hr=True, hr_scale=1.5,
                                                            hr_second_pass_steps=2))
    assert hires.images[0].image.size == (48, 48)
    picture = Image.new("RGB", (32, 32), (200, 40, 40))
    before = seeds.draws
    img2img = services.generation.txt2img(dataclasses.replace(RANDOM, batch_size=2,
                                                              img2img=Img2ImgInputs((picture,))))
    assert seeds.draws - before == 2 and len(img2img.images) == 2
    assert parses == [RANDOM.prompt, RANDOM.prompt]


def test_xyz_plot_draws_once_for_the_whole_plot_and_parses_once_per_cell(services, seeds, parses):
    before = seeds.draws
    result = services.scripts.run_xyz_plot(RANDOM, [AxisInput("Steps", "1, 2"), AxisInput("CFG Scale", "4, 6")],
                                           XyzOptions(include_sub_images=True))
    assert seeds.draws - before == 2
    assert len(result.sub_images) == 4 and len({image.seed for image in result.sub_images}) == 1
    assert parses == [RANDOM.prompt] * 4


def test_xyz_keep_random_seeds_gives_each_cell_its_own_draw(services, seeds):
    before = seeds.draws
    result = services.scripts.run_xyz_plot(RANDOM, [AxisInput("Steps", "1, 2")],
                                           XyzOptions(include_sub_images=True, keep_random_seeds=True))
    assert seeds.draws - before == 2 * 2  # A1111's "Keep -1 for seeds": every cell is its own random job
    assert all(image.seed >= 0 for image in result.sub_images)


def test_prompt_matrix_draws_once_and_parses_once_per_image(services, seeds, parses):
    before = seeds.draws
    base = dataclasses.replace(RANDOM, prompt="a circle|red|big")
    result = services.scripts.run_prompt_matrix(base, PromptMatrixOptions(different_seeds=True))
    assert seeds.draws - before == 2
    first = result.sub_images[0].seed
    assert [image.seed for image in result.sub_images] == [first, first + 1, first + 2, first + 3]
    assert parses == ["a circle", "a circle, red", "a circle, big", "a circle, red, big"]


def test_tiled_upscale_draws_once_for_all_its_tiles(services, seeds):
    before = seeds.draws
    options = TiledUpscaleOptions(upscaler="Lanczos", target_size_type="Scale from image size", custom_scale=2,
                                  tile_width=32, tile_height=32, mask_blur=4, padding=8)
    base = dataclasses.replace(RANDOM, denoising_strength=0.3, img2img=Img2ImgInputs((Image.new("RGB", (32, 32)),)))
    result = services.scripts.submit_tiled_upscale(base, options).result()
    assert result.cells_done == 4 and seeds.draws - before == 2
    assert f"Seed: {result.images[0].seed}," in result.images[0].infotext


def test_the_http_api_reports_the_one_resolved_seed(services, seeds, parses):
    before = seeds.draws
    with ServerThread(build_app(services), free_port()) as server:
        body = {"prompt": RANDOM.prompt, "steps": 1, "width": 32, "height": 32, "seed": -1, "subseed": -1,
                "batch_size": 2, "n_iter": 2, "sampler_name": "Euler"}
        response = httpx.post(f"{server.url}/sdapi/v1/txt2img", json=body, timeout=120)
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    assert seeds.draws - before == 2
    assert info["all_seeds"] == [info["seed"] + i for i in range(4)] and info["seed"] >= 0
    assert parses == [RANDOM.prompt]


def test_only_resolution_parses_prompts_or_draws_seeds():
    """The engine, the services and the scripts take what the resolved request says: none of them parses a prompt
    for generation or draws a seed (a second parse or draw is how seeds and LoRA calls drifted between layers)."""
    root = Path(__file__).resolve().parents[2] / "webui"
    calls = ("parse_full(", "extract_extra_networks(", "parse_prompt_schedule(", "split_and(", "reschedule(",
             "parse_negative(", "resolve_seed(", "random.randrange(", "SystemRandom(")
    prompt_language = ("prompt_parser", "prompt_network_tags", "prompt_composition", "prompt_schedule")
    owners = {root / "core" / f"{name}.py" for name in (*prompt_language, "resolve", "seeds")}
    offenders = [f"{path.relative_to(root)}: {call}" for path in sorted(root.rglob("*.py")) if path not in owners
                 for call in calls if call in path.read_text(encoding="utf-8")]
    assert offenders == []
