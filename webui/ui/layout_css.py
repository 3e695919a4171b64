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

LAYOUT_CSS = f"""
/* whole images, never cropped: thumbnails and the large preview alike */
{_GALLERY_IMAGES} {{ object-fit: contain !important; }}
img.pixelated {{ image-rendering: pixelated; }}
/* icon buttons: a glyph from the page's text font, a fixed square */
button.icon-button, #quicksettings button, [id$="_seed_row"] button, [id$="_styles_row"] button,
#paste, #img2img_paste {{ min-width: 2.5em !important; max-width: 3em; font-size: 1.2em; padding: 0.2em; }}
/* the prompt bar's right column: tool buttons share a line, so it is not taller than the prompts */
[id$="_styles_row"] {{ flex-wrap: nowrap; gap: 0.4em; }}
#device_note p {{ font-size: 0.9em; opacity: 0.85; margin: 0; }}
@media (max-width: {NARROW_PX}px) {{
  /* the result area comes right after the prompt bar and its Generate button, before the settings */
  .row > .column:has(> #txt2img_gallery), .row > .column:has(> #img2img_gallery) {{ order: -1; }}
}}
"""

# Runs once when the page opens (Blocks' `head`): marks small result images for nearest-neighbour scaling, and on a
# narrow screen brings the progress and result into view when Generate is pressed.
LAYOUT_HEAD = f"""
<script>
(() => {{
  const galleries = {list(GALLERIES)!r};
  document.addEventListener("load", (event) => {{
    const img = event.target;
    if (!(img instanceof HTMLImageElement)) return;
    if (!galleries.some((id) => img.closest("#" + id))) return;
    img.classList.toggle("pixelated", img.naturalWidth > 0 && img.naturalWidth <= {SMALL_IMAGE_PX});
  }}, true);
  document.addEventListener("click", (event) => {{
    const button = event.target instanceof Element && event.target.closest("#txt2img_generate, #img2img_generate");
    if (!button || window.innerWidth > {NARROW_PX}) return;
    const tab = button.id.split("_")[0];
    setTimeout(() => {{
      const target = document.getElementById(tab + "_progress") || document.getElementById(tab + "_gallery");
      if (target) target.scrollIntoView({{behavior: "smooth", block: "start"}});
    }}, 150);
  }}, true);
}})();
</script>
"""
