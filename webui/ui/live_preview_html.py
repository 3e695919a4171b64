"""The live preview under the progress bar of a generation tab: the running job's preview image, inline.

Why inline (a data URI inside the progress HTML): the progress text is already streamed to the tab every poll, so
the preview needs no extra output (the Generate endpoints keep their public outputs) and no file on disk.
"""
from __future__ import annotations

import base64
import io
from typing import Any

from webui.core.progress import ProgressSnapshot
from webui.ui.formatting import progress_html

PREVIEW_SHOWN_PX = 256  # small previews (a 16 px Approx cheap) are scaled up to this, without blur


def preview_html(image: Any | None) -> str:
    """An <img> of a PIL preview, or "" without one."""
    if image is None:
        return ""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    width, height = image.size
    scale = max(1.0, PREVIEW_SHOWN_PX / max(width, height))
    shown = "pixelated" if scale > 1 else "auto"
    return (f"<div class='live-preview'><img alt='Live preview' src='data:image/png;base64,{data}' "
            f"width='{round(width * scale)}' height='{round(height * scale)}' "
            f"style='image-rendering: {shown}; max-width: 100%; height: auto;'></div>")


def progress_with_preview(snapshot: ProgressSnapshot, preview: Any | None) -> str:
    """Progress (percent, step, ETA) with the live preview under it while the job runs."""
    text = progress_html(snapshot)
    return text + preview_html(preview) if text else ""
