"""A few end-to-end checks in a real browser: Playwright driving Debian's `chromium` (no browser downloads) against
the real Gradio app served in-process on the tiny SD1 model.

Missing Playwright or chromium is a test failure (CI must run these); set SD_STUDIO_SKIP_BROWSER=1 to skip them
locally instead. SD_STUDIO_CHROMIUM may point at a chromium binary other than the one on PATH.
"""
from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.requests import GenerationRequest
from webui.engine.output.png import read_infotext

INSTALL_HINT = ("install Debian's chromium (`apt-get install -y chromium`) and Playwright "
                "(`pip install -r requirements-dev.txt`; do not run `playwright install`), "
                "or set SD_STUDIO_SKIP_BROWSER=1 to skip the browser tests")
# Look for the browser before the module's server is built, so a missing chromium fails (or skips) early.
pytestmark = pytest.mark.usefixtures("browser")

TIMEOUT_MS = 30_000  # one generation of the tiny model on a slow CPU takes a few seconds


def _skip_allowed() -> bool:
    return os.environ.get("SD_STUDIO_SKIP_BROWSER", "").strip().lower() in {"1", "true", "yes"}


def _missing(what: str) -> NoReturn:
    if _skip_allowed():
        pytest.skip(f"{what} (SD_STUDIO_SKIP_BROWSER is set)")
    pytest.fail(f"browser tests: {what}; {INSTALL_HINT}", pytrace=False)


def _chromium_path() -> str:
    configured = os.environ.get("SD_STUDIO_CHROMIUM")
    if configured:
        if not os.path.isfile(configured):
            _missing(f"SD_STUDIO_CHROMIUM={configured} is not a file")
        return configured
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    _missing("no `chromium` on PATH")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed")
    executable = _chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("browser-data"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=False))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as running:
        yield services, running.url
    services.runtime.executor.shutdown()


@pytest.fixture
def page(browser, server):
    _, url = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url)
    page.locator("#txt2img_prompt textarea").wait_for()
    # the page-load event sets sizes to the model's native size: type only after it, or it overwrites the values
    page.locator("#device_note").get_by_text("Running on").wait_for()
    yield page
    context.close()


def _set_slider(page, elem_id: str, value: int) -> None:
    """Type into a Gradio slider's number box; the value is committed on blur."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def test_txt2img_generates_an_image_and_shows_its_infotext(page, server):
    services, _ = server
    prompt = "a red circle in the browser"
    page.locator("#txt2img_prompt textarea").fill(prompt)
    _set_slider(page, "txt2img_steps", 2)
    _set_slider(page, "txt2img_width", 64)
    _set_slider(page, "txt2img_height", 64)
    outputs = services.settings.paths.outputs_dir / "txt2img-images"
    before = set(outputs.rglob("*.png")) if outputs.exists() else set()

    page.locator("#txt2img_generate").click()

    page.locator("#txt2img_gallery img").first.wait_for()
    info = page.locator("#txt2img_info")
    info.get_by_text("Steps: 2").wait_for()
    text = info.inner_text()
    assert prompt in text and "Size: 64x64" in text
    assert page.locator("#txt2img_message").inner_text().strip() == ""
    saved = set(outputs.rglob("*.png")) - before
    assert len(saved) == 1
    saved_image = Image.open(saved.pop())
    assert saved_image.size == (64, 64)
    assert prompt in (read_infotext(saved_image) or "")


@pytest.fixture(scope="module")
def generated_png(server):
    """A PNG saved by a generation, made through the services (not the browser) so this test stands alone."""
    services, _ = server
    request = GenerationRequest(prompt="a blue square from png info", steps=2, width=64, height=64, seed=4242)
    result = services.generation.submit_txt2img(request).result(timeout=120)
    path = result.images[0].path
    assert path is not None and path.exists()
    return path


def test_png_info_reads_an_uploaded_png_and_sends_it_to_txt2img(page, generated_png):
    page.locator("#tab_pnginfo-button").click()
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(generated_png))

    panel = page.locator("#pnginfo_html")
    panel.get_by_text("Seed: 4242", exact=False).wait_for()
    text = panel.inner_text()
    assert "a blue square from png info" in text and "Steps: 2" in text and "Size: 64x64" in text

    page.locator("#pnginfo_send_to_txt2img").click()
    prompt_box = page.locator("#txt2img_prompt textarea")
    prompt_box.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('#txt2img_prompt textarea').value === 'a blue square from png info'",
        timeout=TIMEOUT_MS)
    assert page.locator("#tab_txt2img-button").get_attribute("aria-selected") == "true"
    assert page.locator("#txt2img_steps input[type=number]").input_value() == "2"
    assert page.locator("#txt2img_width input[type=number]").input_value() == "64"
