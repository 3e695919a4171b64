"""The shipped demo checkpoint loads through the normal registry path and draws the colours it is asked for."""
from __future__ import annotations

import dataclasses

from benchmarks.demo_quality import score_image
from tests.conftest import make_settings
from webui.core.requests import GenerationRequest


def test_demo_model_is_listed_loaded_and_draws_the_named_colours(tmp_path):
    from webui.services import DEMO_MODEL_PATH, build_services

    assert DEMO_MODEL_PATH.is_file()
    services = build_services(make_settings(tmp_path, include_demo_model=True))
    try:
        assert services.load_startup_model().result() == "demo-shapes.safetensors"
        assert services.is_demo_model(services.current_checkpoint())
        request = GenerationRequest(prompt="a red circle on a blue background", steps=20, width=64, height=64,
                                    cfg_scale=6.0, seed=1000, sampler_name="DPM++ 2M", save_images=False)
        score = score_image(services.txt2img(request).images[0].image)
        assert score.bg == "blue" and score.fg == "red"
        other = score_image(services.txt2img(dataclasses.replace(
            request, prompt="a yellow square on a green background")).images[0].image)
        assert other.bg == "green" and other.fg == "yellow"
    finally:
        services.executor.shutdown()
