"""Writes generated images to A1111's output folders, infotext embedded, before anybody is shown them."""
from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

from PIL import Image

from webui.core.filenames import dated_folder, next_image_path
from webui.engine.images import save_image


class OutputWriter:
    """`outputs/<kind>/YYYY-MM-DD/NNNNN-SEED.<ext>`; a lock keeps numbering unique across threads."""

    def __init__(self, outputs_dir: Path, fmt: str = "png"):
        self.outputs_dir = outputs_dir
        self.fmt = fmt
        self._lock = threading.Lock()

    def save(self, image: Image.Image, seed: int, infotext: str, kind: str = "txt2img-images",
             today: date | None = None) -> Path:
        with self._lock:
            folder = dated_folder(self.outputs_dir, kind, today or date.today())
            folder.mkdir(parents=True, exist_ok=True)
            path = next_image_path(folder, seed, self.fmt)
            return save_image(image, path, infotext, fmt=self.fmt)
