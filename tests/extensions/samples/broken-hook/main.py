"""An extension whose after-image hook raises: the generation completes without it and says so."""
from __future__ import annotations

from webui.extensions.api import ExtensionContext


def setup(ext: ExtensionContext) -> None:
    @ext.after_image
    def explode(image, info):
        raise RuntimeError("broken-hook exploded on purpose")
