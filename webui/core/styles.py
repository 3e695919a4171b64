"""Prompt styles: named prompt/negative-prompt snippets kept in A1111's `styles.csv`.

Why this shape: users carry their `styles.csv` over from AUTOMATIC1111, so the file format (UTF-8 with BOM, header
`name,prompt,negative_prompt`, CSV quoting) and the merge rule must be the same. The store is an object given a
path (no module-level registry), and every write goes through a temporary file and `os.replace`, keeping the
previous file as `<path>.bak`, so a crash or a full disk never leaves a half-written styles file.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from webui.core.errors import ValidationError

logger = logging.getLogger(__name__)

FIELDNAMES: tuple[str, str, str] = ("name", "prompt", "negative_prompt")
ENCODING = "utf-8-sig"  # reads files with or without a BOM, writes one (as A1111)
PROMPT_TOKEN = "{prompt}"


@dataclass(frozen=True)
class Style:
    """One row of styles.csv."""

    name: str
    prompt: str = ""
    negative_prompt: str = ""


def apply_style_text(style_text: str, prompt: str) -> str:
    """Merge one style's text into a prompt, A1111's rule.

    If the style contains `{prompt}` the prompt is put in its place (every occurrence); otherwise the style is
    appended after `, ` -- both sides stripped, and an empty side (empty prompt or empty style) adds no comma.
    """
    if PROMPT_TOKEN in style_text:
        return style_text.replace(PROMPT_TOKEN, prompt)
    return ", ".join(part for part in (prompt.strip(), style_text.strip()) if part)


def apply_styles(prompt: str, negative_prompt: str, styles: Iterable[Style]) -> tuple[str, str]:
    """Apply styles in order to both the prompt and the negative prompt."""
    for style in styles:
        prompt = apply_style_text(style.prompt, prompt)
        negative_prompt = apply_style_text(style.negative_prompt, negative_prompt)
    return prompt, negative_prompt


def read_styles_csv(text: str) -> list[Style]:
    """Parse styles.csv content (BOM already removed by the decoder).

    Accepts A1111's older two-column files whose prompt column is called `text`; rows with an empty name or a
    name starting with `#` are skipped, as A1111 does.
    """
    styles: list[Style] = []
    for row in csv.DictReader(io.StringIO(text), skipinitialspace=True):
        name = (row.get("name") or "").strip()
        if not name or name.startswith("#"):
            continue
        prompt = row.get("prompt") if "prompt" in row else row.get("text")
        styles.append(Style(name, prompt or "", row.get("negative_prompt") or ""))
    return styles


def write_styles_csv(styles: Iterable[Style]) -> str:
    """styles.csv content for these styles (without the BOM, which the encoder adds)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(FIELDNAMES)
    for style in styles:
        writer.writerow((style.name, style.prompt, style.negative_prompt))
    return buffer.getvalue()


class StyleStore:
    """The styles in one styles.csv file, kept in file order.

    Reads happen on `load()` (or on the first change, so a change never overwrites a file that was not read).
    A lock serialises changes from concurrent UI/API requests within this process.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._styles: dict[str, Style] = {}
        self._loaded = False
        self._lock = threading.RLock()

    @property
    def backup_path(self) -> Path:
        """Where the previous version of the file is kept (A1111's `styles.csv.bak`)."""
        return self.path.with_name(self.path.name + ".bak")

    def load(self) -> None:
        """(Re)read the file; a missing file means no styles. Duplicate names: the last row wins."""
        with self._lock:
            styles: dict[str, Style] = {}
            if self.path.exists():
                for style in read_styles_csv(self.path.read_text(encoding=ENCODING)):
                    styles[style.name] = style
            self._styles = styles
            self._loaded = True

    def names(self) -> list[str]:
        """Style names in file order."""
        with self._lock:
            return list(self._styles)

    def styles(self) -> list[Style]:
        """All styles in file order."""
        with self._lock:
            return list(self._styles.values())

    def get(self, name: str) -> Style | None:
        """The style called `name`, or None."""
        with self._lock:
            return self._styles.get(name)

    def save_style(self, style: Style) -> None:
        """Add the style, or replace the one with the same name in place, and write the file."""
        if not style.name.strip():
            raise ValidationError("A style needs a name.")
        with self._lock:
            self._ensure_loaded()
            self._styles[style.name] = style
            self._write()

    def delete(self, name: str) -> bool:
        """Remove a style and write the file; False (and no write) when there is no such style."""
        with self._lock:
            self._ensure_loaded()
            if name not in self._styles:
                return False
            del self._styles[name]
            self._write()
            return True

    def apply(self, prompt: str, negative_prompt: str, names: Sequence[str]) -> tuple[str, str]:
        """Apply the named styles in order; unknown names are skipped with a warning, as A1111 ignores them."""
        chosen: list[Style] = []
        for name in names:
            style = self.get(name)
            if style is None:
                logger.warning("Style %r not found in %s; ignored.", name, self.path)
            else:
                chosen.append(style)
        return apply_styles(prompt, negative_prompt, chosen)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _write(self) -> None:
        """Write all styles to a temporary file beside the target, back up the old file, then swap atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding=ENCODING, newline="") as handle:
                handle.write(write_styles_csv(self._styles.values()))
                handle.flush()
                os.fsync(handle.fileno())
            if self.path.exists():
                shutil.copymode(self.path, tmp_name)
                shutil.copy2(self.path, self.backup_path)
            else:
                os.chmod(tmp_name, 0o644)  # mkstemp's 0600 would hide the file from other tools
            os.replace(tmp_name, self.path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
