"""Page-wide layout rules for the first minute on a desktop and a phone: whole images in the galleries, small images
scaled without blur, the result right after Generate on narrow screens, and compact icon buttons.

Why CSS (and a few lines of page script) rather than new widgets: these are presentation facts about widgets other
modules own; selecting them by their elem_ids keeps those modules untouched.
"""
from __future__ import annotations

GALLERIES = ("txt2img_gallery", "img2img_gallery", "extras_gallery", "train_samples", "train_preview_gallery")
NARROW_PX = 768  # below this width Gradio stacks the columns of a row (phones, narrow windows)
SMALL_IMAGE_PX = 256  # images at most this wide are drawn with nearest-neighbour scaling

_GALLERY_IMAGES = ", ".join(f"#{gallery} img" for gallery in GALLERIES)
_RESULT_IMAGES = "#txt2img_gallery img, #img2img_gallery img"

LAYOUT_CSS = f"""
/* whole images, never cropped: thumbnails and the large preview alike */
{_GALLERY_IMAGES} {{ object-fit: contain !important; }}
img.pixelated {{ image-rendering: pixelated; }}
/* no scroll anchoring in the generation tabs: once the result area is scrolled to, the progress and the live preview
   growing at its top must not push it up out of the window */
#tab_txt2img, #tab_img2img {{ overflow-anchor: none; }}
/* icon buttons: a glyph from the page's text font, a fixed square */
button.icon-button, #quicksettings button, [id$="_seed_row"] button, [id$="_styles_row"] button,
#paste, #img2img_paste {{ min-width: 2.5em !important; max-width: 3em; font-size: 1.2em; padding: 0.2em; }}
/* the prompt bar's right column: the paste and style buttons share one line, so it is not taller than the prompts */
.row:has(> #paste), .row:has(> #img2img_paste) {{ flex-wrap: wrap; gap: 0.4em; }}
[id$="_styles_row"] {{ flex: 0 0 auto !important; width: auto !important; min-width: 0 !important; gap: 0.4em; }}
.row:has(> #paste) > .form, .row:has(> #img2img_paste) > .form {{ flex-basis: 100%; }}
/* a result never taller than the window, so it is seen whole once scrolled to; the grid grows with it instead of
   scrolling inside a fixed height (which cut off the bottom of a square image) */
{_RESULT_IMAGES} {{ max-height: calc(100vh - 120px); }}
#txt2img_gallery .grid-wrap, #img2img_gallery .grid-wrap {{ height: auto !important; max-height: none !important; }}
#txt2img_gallery .thumbnail-item, #img2img_gallery .thumbnail-item {{ max-height: calc(100vh - 120px); }}
#device_note p {{ font-size: 0.9em; opacity: 0.85; margin: 0; }}
/* Train form checkboxes: Gradio's form row gives them no minimum width, which cut labels to "Grad chec" */
.train-checkbox {{ min-width: min(230px, 100%) !important; }}
.train-checkbox .label-text {{ white-space: nowrap; }}
@media (min-width: {NARROW_PX + 1}px) {{
  /* beside the taller button column the prompt box uses the height that stood empty under it */
  #txt2img_prompt textarea, #img2img_prompt textarea {{ min-height: 8em; }}
}}
@media (max-width: {NARROW_PX}px) {{
  /* the result area comes right after the prompt bar and its Generate button, before the settings */
  .row > .column:has(> #txt2img_gallery), .row > .column:has(> #img2img_gallery) {{ order: -1; }}
}}
"""

# Runs once when the page opens (Blocks' `head`): marks small result images for nearest-neighbour scaling, and
# when Generate is pressed brings the progress and result into view if they are below the window (always on a phone,
# where they follow the prompt bar; on a desktop when the window is short).
LAYOUT_HEAD = f"""
<script>
(() => {{
  const galleries = {list(GALLERIES)!r};
  const waiting = new Set();  // tabs whose Generate was pressed: their next result is brought into view
  document.addEventListener("load", (event) => {{
    const img = event.target;
    if (!(img instanceof HTMLImageElement)) return;
    if (!galleries.some((id) => img.closest("#" + id))) return;
    img.classList.toggle("pixelated", img.naturalWidth > 0 && img.naturalWidth <= {SMALL_IMAGE_PX});
    const tab = ["txt2img", "img2img"].find((name) => img.closest("#" + name + "_gallery"));
    if (!tab || !waiting.has(tab)) return;
    waiting.delete(tab);
    const box = img.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) img.scrollIntoView({{block: "center"}});
  }}, true);
  // on a narrow screen each settings fold starts closed (once, when it first appears: Gradio may render a tab's
  // content only when the tab is opened), so prompt, Generate and the result come first
  if (window.innerWidth <= {NARROW_PX}) {{
    const handled = new Set();
    // a fold counts as handled once it is seen closed: a click before the page's scripts are ready does nothing,
    // so it is clicked again on the next change of the page (and the user's own reopening is left alone)
    const foldAll = () => document.querySelectorAll(".settings-fold").forEach((box) => {{
      const toggle = box.querySelector(".label-wrap");
      if (!toggle || handled.has(box.id)) return;
      if (toggle.classList.contains("open")) toggle.click();
      else handled.add(box.id);
    }});
    new MutationObserver(foldAll).observe(document.documentElement, {{childList: true, subtree: true,
                                                                       attributes: true, attributeFilter: ["class"]}});
  }}
  document.addEventListener("click", (event) => {{
    const button = event.target instanceof Element && event.target.closest("#txt2img_generate, #img2img_generate");
    if (!button) return;
    const tab = button.id.split("_")[0];
    waiting.add(tab);
    setTimeout(() => {{
      const gallery = document.getElementById(tab + "_gallery");
      const target = document.getElementById(tab + "_progress") || gallery;
      if (!target || !gallery) return;
      const box = gallery.getBoundingClientRect();
      const narrow = window.innerWidth <= {NARROW_PX};
      if (narrow || box.top > window.innerHeight * 0.4) target.scrollIntoView({{block: "start"}});
    }}, 400);  // after the buttons swap (Generate -> Interrupt/Skip), which moves what is below them
  }}, true);
}})();
</script>
"""
