"""The first minute in a real browser at desktop (1366x900) and phone (390x844) size, on the shipped demo model:
the page opens at the model's 64x64, icons render without an emoji font, the result is fully visible (whole, at its
own aspect) after Generate, the Train form has no clipped labels, and the console has no "Infinite extent" warnings.

Screenshots of each step are written to the test's tmp folder (look at them when a layout changes)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from app import build_app
from tests.browser.test_browser_ui import TIMEOUT_MS, browser  # noqa: F401 - the shared chromium fixture
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings

pytestmark = pytest.mark.usefixtures("browser")
SIZES = {"desktop": (1366, 900), "phone": (390, 844)}
ICONS = ("#refresh_sd_model_checkpoint", "#txt2img_random_seed", "#txt2img_reuse_seed", "#paste",
         "#txt2img_style_apply", "#txt2img_styles_refresh")
# Draws a button's text and a surely missing glyph (a private-use code point) in the button's font: equal pixels
# mean the icon is the "missing glyph" box (or nothing at all).
GLYPH_CHECK = """([selector, override]) => {
  const el = document.querySelector(selector);
  const text = override || el.innerText.trim();
  const font = getComputedStyle(el).font;
  const draw = (t) => { const c = document.createElement("canvas"); c.width = 80; c.height = 60;
    const g = c.getContext("2d"); g.font = font; g.fillText(t, 10, 40); return c.toDataURL(); };
  return {text, missing: draw(text) === draw("\\uE000") || draw(text) === draw("")};
}"""
IMAGE_BOX = """() => {
  const img = document.querySelector("#txt2img_gallery img");
  const r = img.getBoundingClientRect(), g = document.querySelector("#txt2img_gallery").getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height,
          natural: [img.naturalWidth, img.naturalHeight], fit: getComputedStyle(img).objectFit,
          pixelated: getComputedStyle(img).imageRendering, vw: window.innerWidth, vh: window.innerHeight,
          gallery: [g.top, g.bottom, g.left, g.right]};
}"""
CLIPPED_LABELS = """() => [...document.querySelectorAll("#tab_train label, #tab_train label span")]
  .filter((e) => e.offsetParent && e.textContent.trim() && e.scrollWidth > e.clientWidth + 1)
  .map((e) => e.textContent.trim())"""


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("first-minute"), tiny_checkpoints, ())
    services = build_services(make_settings(data_dir, api=False, include_demo_model=True))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as running:
        yield services, running.url
    services.runtime.executor.shutdown()


@pytest.fixture(params=list(SIZES))
def page(request, browser, demo_server):  # noqa: F811 - `browser` is the imported fixture
    width, height = SIZES[request.param]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda message: page.console_messages.append(message.text))
    page.goto(demo_server[1])
    page.locator("#device_note").get_by_text("Running on").wait_for()  # page-load defaults applied by now
    page.size_name = request.param
    yield page
    context.close()


def open_tab(page, name: str, tab_id: str) -> None:
    """A tab by its button, or through Gradio's "More tabs" menu on a narrow screen."""
    button = page.locator(f"#tab_{tab_id}-button")
    if button.is_visible():
        button.click()
    else:
        page.locator('button[aria-label="More tabs"]').first.click()  # the main tabs' (nested tabs have one too)
        page.locator(".overflow-dropdown button", has_text=name).click()


def open_settings(page) -> None:
    """Unfold txt2img's settings (closed when the page opens on a phone)."""
    if not page.locator("#txt2img_steps").is_visible():
        page.locator("#txt2img_settings_fold .label-wrap").first.click()
    page.locator("#txt2img_steps").wait_for(state="visible")


def test_first_view_fits_the_model_and_icons_render(page, tmp_path):
    page.screenshot(path=str(tmp_path / f"{page.size_name}-first.png"))
    # on a phone the settings start folded, so the prompt, Generate and the result area come first
    page.wait_for_timeout(500)
    folded = page.size_name == "phone"
    assert page.locator("#txt2img_steps").is_visible() is not folded
    assert page.locator("#txt2img_settings_fold .label-wrap").first.is_visible()
    if folded:
        generate = page.locator("#txt2img_generate").bounding_box()
        gallery = page.locator("#txt2img_gallery").bounding_box()
        settings = page.locator("#txt2img_settings_fold").bounding_box()
        assert generate["y"] < gallery["y"] < settings["y"], (generate, gallery, settings)
    assert page.locator("#txt2img_width input[type=number]").input_value() == "64"
    assert page.locator("#txt2img_height input[type=number]").input_value() == "64"
    assert "64x64" in page.locator("#demo_model_note").inner_text()
    assert page.locator("#device_note").inner_text().startswith("Running on CPU (")
    for selector in ICONS:
        glyph = page.evaluate(GLYPH_CHECK, [selector, ""])
        assert glyph["text"] and not glyph["missing"], (selector, glyph)
    if shutil.which("fc-list") and not subprocess.run(["fc-list", ":charset=1f504"], capture_output=True,
                                                       text=True).stdout.strip():
        # the check does see an empty box: the old emoji icon, on this machine without an emoji font
        assert page.evaluate(GLYPH_CHECK, [ICONS[0], "\U0001f504"])["missing"]


def test_result_is_fully_visible_after_generate(page, tmp_path):
    open_settings(page)
    page.locator("#txt2img_prompt textarea").fill("a red circle on a blue background")
    page.locator("#txt2img_steps input[type=number]").fill("4")
    page.locator("#txt2img_steps input[type=number]").press("Tab")
    page.locator("#txt2img_generate").click()
    page.locator("#txt2img_gallery img").first.wait_for()
    page.wait_for_function("() => { const i = document.querySelector('#txt2img_gallery img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    page.wait_for_timeout(800)  # the smooth scroll to the result
    page.screenshot(path=str(tmp_path / f"{page.size_name}-generated.png"))
    box = page.evaluate(IMAGE_BOX)
    assert box["natural"] == [64, 64]
    assert 0 <= box["top"] and box["bottom"] <= box["vh"] and 0 <= box["left"] and box["right"] <= box["vw"], box
    top, bottom, left, right = box["gallery"]
    assert top <= box["top"] and box["bottom"] <= bottom + 1 and left <= box["left"] and box["right"] <= right + 1
    # the whole picture at its own aspect: contained in its box (never cropped), and scaled up without blur
    assert box["fit"] == "contain" and box["pixelated"] == "pixelated", box
    assert box["width"] > 64 and box["height"] > 64


def test_train_form_has_no_clipped_labels_and_no_plot_warnings(page, tmp_path):
    open_tab(page, "Train", "train")
    page.locator("#train_start").wait_for()
    for accordion in page.locator("#tab_train button.label-wrap").all():
        if "open" not in (accordion.get_attribute("class") or ""):
            accordion.click()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(tmp_path / f"{page.size_name}-train.png"), full_page=True)
    assert page.evaluate(CLIPPED_LABELS) == []
    assert page.get_by_label("Aspect buckets").is_visible()
    assert not page.locator("#train_cancel").is_visible() and not page.locator("#train_resume").is_visible()
    assert not page.locator("#train_lycoris_config").is_visible()  # the default network is a plain LoRA
    assert not page.locator("#train_loss_plot").is_visible()
    assert not [text for text in page.console_messages if "Infinite extent" in text]


def test_live_preview_shows_while_sampling_and_interrupt_acts_at_once(page, demo_server):
    if page.size_name != "desktop":
        pytest.skip("one size is enough for the preview and Interrupt")
    services, _ = demo_server
    page.locator("#txt2img_steps input[type=number]").fill("150")
    page.locator("#txt2img_steps input[type=number]").press("Tab")
    page.locator("#txt2img_generate").click()
    preview = page.locator("#txt2img_progress .live-preview img")
    preview.wait_for()  # the first step's Approx cheap preview, under the progress bar
    assert page.locator("#txt2img_progress").inner_text().count("Step") == 1
    assert preview.evaluate("(img) => img.naturalWidth") > 0
    page.locator("#txt2img_interrupt").click()
    page.locator("#txt2img_generate").wait_for(state="visible", timeout=10_000)  # well before 150 steps
    page.locator("#txt2img_message").get_by_text("Interrupted").wait_for()
    assert services.queue.progress().active is False
