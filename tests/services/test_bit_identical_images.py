"""The same seed and settings give the same pixels as the code did before requests were resolved in one place.

The expected digests were written from that code (`_written_from_commit` in the data file) by
`tests/services/bit_identical_cases.py`; any change of noise, seeds, prompt parsing, LoRA weights or sampler set-up
changes a digest. Infotexts are compared too: they are what a user pastes back to re-make an image.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_data_dir, make_settings
from tests.services.bit_identical_cases import App, add_lora, render

EXPECTED = json.loads((Path(__file__).parent / "data" / "images_before_resolve.json").read_text())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    services = build_services(make_settings(make_data_dir(tmp_path_factory.mktemp("same"), tiny_checkpoints)))
    services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
    add_lora(services)
    app = App(services.generation.txt2img, services.scripts.run_xyz_plot, services.scripts.run_prompt_matrix,
              lambda base, options: services.scripts.submit_tiled_upscale(base, options).result())
    yield render(app)
    services.runtime.executor.shutdown()


@pytest.mark.parametrize("case", sorted(key for key in EXPECTED if not key.startswith("_")))
def test_images_are_bit_identical_to_before(rendered, case):
    assert rendered[case] == EXPECTED[case]
