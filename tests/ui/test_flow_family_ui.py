"""The generation tabs follow a flow-matching model through gradio_client against the real app: choosing Flux dev
offers only the flow samplers and shows "Distilled CFG Scale" and "Shift", AuraFlow shows Shift only, an SD model
hides both and offers A1111's full list again; the sliders' values reach the request (the engine tests check
the infotext)."""
from __future__ import annotations

import pytest
from gradio_client import Client

from app import build_app
from tests.conftest import AURA, FLUX_DEV, FLUX_SCHNELL, ServerThread, free_port, make_settings


@pytest.fixture(scope="module")
def ui(flow_data, tiny_checkpoints):
    import shutil

    from webui.services import build_services

    shutil.copy(tiny_checkpoints["sd1"], flow_data / "models" / "Stable-diffusion" / tiny_checkpoints["sd1"].name)
    services = build_services(make_settings(flow_data, api=False))
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url
    services.runtime.executor.shutdown()


def select(client: Client, title: str) -> list:
    loaded, message, _ = client.predict(title, api_name="/select_checkpoint")
    assert loaded == title, message
    return client.predict("Euler a", api_name="/txt2img_family_controls")  # sampler, distilled, shift, steps, cfg


def visible(update) -> bool | None:
    return update.get("visible") if isinstance(update, dict) else None


@pytest.mark.slow
def test_controls_follow_the_family(ui, tiny_checkpoints):
    services, url = ui
    client = Client(url, verbose=False)
    sampler, distilled, shift, _, _ = select(client, FLUX_DEV)
    assert [c[0] if isinstance(c, (list, tuple)) else c for c in sampler["choices"]] == \
        ["DPM++ 2M", "Euler a", "Euler", "Heun"]
    assert sampler["value"] == "Euler a" and visible(distilled) is True and visible(shift) is True
    sampler, distilled, shift, _, _ = select(client, AURA)
    assert visible(distilled) is False and visible(shift) is True
    sampler, distilled, shift, _, _ = select(client, tiny_checkpoints["sd1"].name)
    assert visible(distilled) is False and visible(shift) is False and len(sampler["choices"]) > 10


def value(update):
    return update.get("value") if isinstance(update, dict) else update


@pytest.mark.slow
def test_steps_and_cfg_follow_a_family_with_other_defaults(ui, tiny_checkpoints):
    """Flux schnell starts from its 4 steps and CFG 1; back on an SD model A1111's 20 steps and CFG 7 return;
    between models with the same defaults the user's values are left alone."""
    _, url = ui
    client = Client(url, verbose=False)
    *_, steps, cfg = select(client, FLUX_SCHNELL)
    assert (value(steps), value(cfg)) == (4, 1.0)
    *_, steps, cfg = select(client, tiny_checkpoints["sd1"].name)
    assert (value(steps), value(cfg)) == (20, 7.0)
    *_, steps, cfg = select(client, AURA)
    assert (value(steps), value(cfg)) == (50, 3.5)
    *_, steps, cfg = select(client, AURA)
    assert value(steps) is None and value(cfg) is None  # same defaults: no change


def test_family_slider_values_reach_the_request_only_when_given():
    """A caller without the session state (an endpoint call) leaves the request's values as they are."""
    from webui.core.requests import GenerationRequest
    from webui.ui.family_controls import FamilyControls

    base = GenerationRequest(prompt="a cat")
    assert FamilyControls.apply(base, []) is base and FamilyControls.apply(base, [None]) is base
    applied = FamilyControls.apply(base, [(4.0, 2.5)])
    assert (applied.distilled_cfg_scale, applied.shift) == (4.0, 2.5)


@pytest.mark.slow
def test_paste_fills_the_family_sliders(ui):
    _, url = ui
    client = Client(url, verbose=False)
    text = ("a cat\nSteps: 4, Sampler: Euler, Schedule type: Uniform, CFG scale: 1, Seed: 3, Size: 32x32, "
            "Distilled CFG Scale: 4.5, Shift: 2.25")
    *_, distilled, shift = client.predict(text, api_name="/txt2img_paste")
    assert distilled["value"] == 4.5 and shift["value"] == 2.25
    *_, distilled, shift = client.predict("a dog\nSteps: 4, Sampler: Euler, Seed: 3, Size: 32x32",
                                          api_name="/txt2img_paste")
    assert "value" not in distilled and shift["value"] == 0.0
