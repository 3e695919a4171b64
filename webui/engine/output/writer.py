"""Writes generated images to A1111's output folders, infotext embedded, before anybody is shown them."""
from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path

from PIL import Image

from webui.core.filenames import FilenameContext, image_decoration, next_image_path, next_sequence_number
from webui.core.options import Options
from webui.engine.output.png import save_image


class OutputWriter:
    """`<folder>/YYYY-MM-DD/NNNNN-<pattern>.<ext>`; a lock keeps numbering unique across threads.

    Built per job from the options of that moment (`from_options`), so a settings change applies to the next
    generation without restarting, and a running job keeps the settings it started with.
    """

    def __init__(self, folder: Path, fmt: str = "png", pattern: str = ""):
        self.folder = Path(folder)
        self.fmt = fmt
        self.pattern = pattern
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Options, data_dir: Path, folder_key: str = "outdir_txt2img_samples"
                     ) -> OutputWriter:
        """The writer the options ask for: folder `folder_key` (relative to the data dir), A1111's
        `samples_format` and `samples_filename_pattern`."""
        return cls(options.output_dir(folder_key, data_dir), str(options.get("samples_format") or "png"),
                   str(options.get("samples_filename_pattern") or ""))

    def save(self, image: Image.Image, seed: int, infotext: str, today: date | None = None) -> Path:
        """Save one image; the file name is filled from its infotext (prompt, sampler, model, ...)."""
        now = datetime.now()
        decoration = image_decoration(self.pattern, FilenameContext.from_infotext(seed, infotext, now))
        with self._lock:
            folder = self.folder / (today or now.date()).isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            path = next_image_path(folder, seed, self.fmt, decoration=decoration)
            return save_image(image, path, infotext, fmt=self.fmt)

    def save_extras(self, image: Image.Image, parameters: str) -> Path:
        """Extras results go straight into the folder as `NNNNN.<ext>` (A1111's extras-images layout), with the
        postprocessing parameters as their infotext."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{next_sequence_number(self.folder):05d}.{self.fmt}"
            return save_image(image, path, parameters, fmt=self.fmt)
