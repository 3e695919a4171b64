"""The ControlNet accordion in a real browser, desktop (1366x900) and phone (390x844) sizes: it opens, shows the
unit tabs, and choosing a preprocessor shows its own threshold sliders. Screenshots go to tmp_path, or to
SD_STUDIO_SCREENSHOT_DIR when set (to look at them)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import build_app
from tests.browser.test_browser_ui import TIMEOUT_MS, browser  # noqa: F401  (the shared chromium fixture)
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings

pytestmark = [pytest.mark.usefixtures("browser"), pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services
    from webui.testing.tiny_controlnet import write_tiny_controlnet

    data_dir = make_data_dir(tmp_path_factory.mktemp("controlnet-browser"), tiny_checkpoints, ("sd1",))
    write_tiny_controlnet(data_dir / "models" / "ControlNet" / "tiny-canny-sd1.safetensors", "sd1")
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as running:
        yield running.url
    services.runtime.executor.shutdown()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SD_STUDIO_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)])
def test_controlnet_accordion_opens_and_follows_the_preprocessor(browser, server, tmp_path, width, height):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto(server)
        if width <= 768:  # the generation settings start folded on a phone: one tap opens them
            fold = page.locator("#txt2img_settings_fold .label-wrap").first
            fold.wait_for()
            page.wait_for_timeout(500)
            if "open" not in (fold.get_attribute("class") or ""):
                fold.click()
        accordion = page.locator("#txt2img_controlnet")
        accordion.scroll_into_view_if_needed()
        accordion.get_by_text("ControlNet", exact=True).first.click()
        page.get_by_role("tab", name="ControlNet Unit 0").wait_for()
        if width > 800:  # on a phone Gradio folds the later unit tabs into its overflow menu
            for index in (1, 2):
                page.get_by_role("tab", name=f"ControlNet Unit {index}").wait_for()
        unit = page.locator("#txt2img_controlnet_unit0_module")
        unit.scroll_into_view_if_needed()
        assert not page.locator("#txt2img_controlnet_unit0_threshold_a").is_visible()
        unit.locator("input").click()
        unit.locator("input").fill("canny")
        page.get_by_role("option", name="canny", exact=True).click()
        low = page.locator("#txt2img_controlnet_unit0_threshold_a")
        low.get_by_text("Canny Low Threshold").wait_for()
        assert page.locator("#txt2img_controlnet_unit0_threshold_b").get_by_text("Canny High Threshold").is_visible()
        model = page.locator("#txt2img_controlnet_unit0_model")
        model.locator("input").click()
        option = page.get_by_role("option", name="tiny-canny-sd1", exact=False).first
        option.wait_for()
        option.click()  # the SD1 model fits the loaded SD1 checkpoint; choosing it closes the list
        option.wait_for(state="hidden")
        assert model.locator("input").input_value().startswith("tiny-canny-sd1")
        accordion.scroll_into_view_if_needed()
        page.screenshot(path=str(_shots(tmp_path) / f"txt2img-controlnet-{width}x{height}.png"), full_page=False)
        box = accordion.bounding_box()
        assert box is not None and box["width"] <= width  # no sideways overflow, also on a phone
    finally:
        context.close()
