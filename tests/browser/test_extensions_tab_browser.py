"""The Extensions tab in a real browser: installed extensions listed with their state, a failed one's traceback
shown, an extension's own tab present (screenshot written to SD_STUDIO_SCREENSHOT_DIR when set)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import build_app
from tests.browser.test_browser_ui import TIMEOUT_MS, browser  # noqa: F401 - the module's chromium fixture
from tests.browser.test_first_minute import open_tab
from tests.conftest import ServerThread, free_port
from tests.extensions.conftest import data_dir_with_extensions, extension_settings

pytestmark = pytest.mark.usefixtures("browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = data_dir_with_extensions(tmp_path_factory.mktemp("ext-browser"), tiny_checkpoints,
                                        ("sample-ext", "broken-import"))
    services = build_services(extension_settings(data_dir, api=False))
    with ServerThread(build_app(services), free_port()) as running:
        yield services, running.url
    services.runtime.shutdown()


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["desktop", "phone"])
def test_extensions_tab_lists_extensions_and_shows_a_failure(browser, server, tmp_path, width, height):  # noqa: F811
    _, url = server
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url)
    page.locator("#txt2img_prompt textarea").wait_for()
    assert page.evaluate("window.sampleExtLoaded === true")  # the extension's JS is on the page
    open_tab(page, "Extensions", "extensions")
    table = page.locator("#extensions_table")
    table.get_by_text("sample-ext", exact=True).first.wait_for()
    text = table.inner_text()
    assert "A test extension" in text and "1.2.0" in text and "active" in text
    assert "failed (import)" in text
    failures = page.locator("#extensions_failures")
    assert "ModuleNotFoundError" in failures.inner_text()
    assert page.locator("#extensions_enabled").get_by_label("sample-ext").is_checked()
    # An app built in-process cannot restart itself: the tab says the change waits for a restart.
    assert page.locator("#extensions_message").inner_text().strip() == \
        "Changes take effect when the server is restarted."
    folder = Path(os.environ.get("SD_STUDIO_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"extensions-tab-{width}x{height}.png"), full_page=True)
    open_tab(page, "Sample", "ext_sample_ext_0")  # the extension's own tab
    page.locator("#sample_ext_input textarea").fill("from the browser")
    page.locator("#sample_ext_echo").click()
    page.wait_for_function("document.querySelector('#sample_ext_output textarea').value === "
                           "'echo: from the browser'")
    context.close()
