"""PNG Info's panel text."""
from __future__ import annotations

import html
from collections.abc import Mapping


def png_info_html(info: str, items: Mapping[str, str]) -> str:
    """A1111's PNG Info panel: the infotext first, then every other text chunk, escaped."""
    if not info and not items:
        return "<div class='pnginfo'><p>Nothing found in the image.</p></div>"
    parts = []
    for title, text in (("parameters", info), *items.items()):
        if text:
            parts.append(f"<div class='pnginfo'><p><b>{html.escape(str(title))}</b></p>"
                         f"<pre class='infotext'>{html.escape(str(text))}</pre></div>")
    return "".join(parts)
