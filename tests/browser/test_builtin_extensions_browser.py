"""The built-in extensions in a real browser: tag autocomplete's list under the prompt box (typing, arrows, Enter,
Tab, Escape, a `<lora:` name), and the Image Browser tab showing a generated image with its infotext.

Screenshots go to the test's temporary folder (pytest prints it on failure) for a person to look at.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from app import build_app
from tests.browser.test_browser_ui import TIMEOUT_MS, browser  # noqa: F401 - the module's chromium fixture
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.requests import GenerationRequest

pytestmark = pytest.mark.usefixtures("browser")
POPUP = "#tagcomplete_popup"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("ext-browser"), tiny_checkpoints, ("sd1",))
    (data_dir / "models" / "Lora").mkdir(parents=True)
    save_file({"lora_unet_none.alpha": torch.ones(())}, str(data_dir / "models" / "Lora" / "zorbtest.safetensors"))
    services = build_services(make_settings(data_dir, api=False))  # the route works without --api
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as running:
        yield services, running.url
    services.runtime.executor.shutdown()


@pytest.fixture
def page(browser, server):  # noqa: F811 - the imported fixture is this one's argument
    _, url = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url)
    page.locator("#txt2img_prompt textarea").wait_for()
    yield page
    context.close()


def _items(page) -> list[str]:
    page.locator(f"{POPUP} li").first.wait_for(state="visible")
    return page.locator(f"{POPUP} li .tagcomplete-label").all_inner_texts()


def test_tag_autocomplete_suggests_while_typing(page, tmp_path):
    box = page.locator("#txt2img_prompt textarea")
    box.click()
    box.press_sequentially("a portrait, smi", delay=30)
    labels = _items(page)
    assert labels[:2] == ["smile", "smile_(expression)"]
    page.screenshot(path=str(tmp_path / "tag-autocomplete.png"))
    page.keyboard.press("ArrowDown")
    assert "active" in (page.locator(f"{POPUP} li").nth(1).get_attribute("class") or "")
    page.keyboard.press("Enter")
    assert box.input_value() == r"a portrait, smile \(expression\), "
    assert not page.locator(POPUP).is_visible()

    box.press_sequentially("<lora:zo", delay=30)
    assert _items(page) == ["zorbtest"]
    page.keyboard.press("Tab")
    assert box.input_value() == r"a portrait, smile \(expression\), <lora:zorbtest:1>"

    box.press_sequentially(", outd", delay=30)
    assert _items(page)[0] == "outdoors"
    page.keyboard.press("Escape")
    page.locator(POPUP).wait_for(state="hidden")
    assert box.input_value().endswith(", outd")  # Escape closes the list and leaves the text


def test_image_browser_tab_shows_a_generated_image(page, server, tmp_path):
    services, _ = server
    request = GenerationRequest(prompt="an image for the browser tab", steps=1, width=64, height=64, seed=777)
    services.generation.submit_txt2img(request).result(timeout=120)
    page.get_by_role("tab", name="Image Browser").click()
    page.locator("#image_browser_text textarea, #image_browser_text input").first.fill("browser tab")
    page.locator("#image_browser_search").click()
    page.locator("#image_browser_gallery img").first.wait_for()
    page.screenshot(path=str(tmp_path / "image-browser-grid.png"))
    page.locator("#image_browser_gallery img").first.click()
    info = page.locator("#image_browser_infotext textarea")
    page.wait_for_function("() => document.querySelector('#image_browser_infotext textarea').value.includes("
                           "'Seed: 777')", timeout=TIMEOUT_MS)
    assert info.input_value().startswith("an image for the browser tab")
    page.screenshot(path=str(tmp_path / "image-browser.png"))


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory, tiny_checkpoints):
    """The app behind both logins, `--gradio-auth` for the UI and `--api-auth` for the API."""
    from webui.core.settings import Credential, SecuritySettings
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("ext-browser-auth"), tiny_checkpoints, ("sd1",))
    security = SecuritySettings(gradio_auth=(Credential("painter", "brush-1"),),
                                api_auth=(Credential("bot", "t0ken"),))
    services = build_services(make_settings(data_dir, security=security))
    with ServerThread(build_app(services), free_port()) as running:
        yield running.url
    services.runtime.executor.shutdown()


def test_tag_autocomplete_works_behind_the_ui_login_and_api_auth(browser, locked_server, tmp_path):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(locked_server)
        page.get_by_label("username").fill("painter")
        page.get_by_label("password").fill("brush-1")
        page.keyboard.press("Enter")
        box = page.locator("#txt2img_prompt textarea")
        box.wait_for()
        box.click()
        box.press_sequentially("a cat, smi", delay=30)
        assert _items(page)[:1] == ["smile"]  # the page's fetch carries the UI login; no password dialog
        page.screenshot(path=str(tmp_path / "tag-autocomplete-logged-in.png"))
    finally:
        context.close()
