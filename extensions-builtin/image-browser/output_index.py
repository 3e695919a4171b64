"""The image browser's index of the outputs folder: which images there are, what their infotext says, and which
of them a filter (prompt text, model, date, folder) selects, one page at a time.

Why a cache keyed by (size, mtime): an outputs folder grows to tens of thousands of images, and reading every
PNG's text chunk on each page turn would make the tab crawl; an image's infotext only changes when its file does.
Pure Python plus the reader passed in (the extension hands it PIL), so it is tested without a server.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".avif", ".gif"})
TRASH_DIR_NAME = ".trash"
_MODEL_RE = re.compile(r"(?:^|,\s*)Model:\s*(\"(?:\\.|[^\\\"])*\"|[^,]*)")
_PARAM_LINE_RE = re.compile(r"^\s*Steps:\s*\d+")


@dataclass(frozen=True)
class ImageEntry:
    """One image under the outputs folder; `rel` is its POSIX path relative to that folder."""

    path: Path
    rel: str
    folder: str
    date: str
    mtime: float
    infotext: str
    prompt: str
    model: str


@dataclass(frozen=True)
class BrowseQuery:
    """A filter and a page. Empty strings mean "any"; dates are ISO `YYYY-MM-DD` (inclusive); pages count from 1."""

    text: str = ""
    model: str = ""
    folder: str = ""
    date_from: str = ""
    date_to: str = ""
    page: int = 1
    page_size: int = 24


@dataclass(frozen=True)
class BrowsePage:
    """The entries of one page, with the totals the pager shows."""

    entries: tuple[ImageEntry, ...]
    page: int
    pages: int
    total: int


def split_infotext(infotext: str) -> tuple[str, str]:
    """(prompt, model name) from an A1111 infotext: the prompt is everything before the negative prompt or the
    parameter line; the model is the `Model:` parameter. Lenient: an unknown shape gives the whole text as prompt."""
    lines = infotext.splitlines()
    prompt_lines: list[str] = []
    model = ""
    for line in lines:
        if line.startswith("Negative prompt:"):
            break
        if _PARAM_LINE_RE.match(line):
            break
        prompt_lines.append(line)
    for line in lines:
        if _PARAM_LINE_RE.match(line):
            found = _MODEL_RE.search(line)
            if found:
                model = found.group(1).strip().strip('"')
    return "\n".join(prompt_lines).strip(), model


class OutputIndex:
    """Lists images under `root` (skipping the trash folder and hidden folders) and filters them.

    `read_infotext(path)` returns an image file's infotext ("" when it has none); it is called once per file
    version thanks to the cache.
    """

    def __init__(self, root: Path, read_infotext: Callable[[Path], str]):
        self._root = root
        self._read = read_infotext
        self._cache: dict[Path, tuple[tuple[int, float], ImageEntry]] = {}

    @property
    def root(self) -> Path:
        return self._root

    def entries(self) -> list[ImageEntry]:
        """Every image, newest first (by modification time, then path for a stable order)."""
        seen: dict[Path, tuple[tuple[int, float], ImageEntry]] = {}
        for path in self._image_files():
            try:
                stat = path.stat()
            except OSError:
                continue
            key = (stat.st_size, stat.st_mtime)
            cached = self._cache.get(path)
            entry = cached[1] if cached and cached[0] == key else self._entry(path, stat.st_mtime)
            seen[path] = (key, entry)
        self._cache = seen
        return sorted((e for _, e in seen.values()), key=lambda e: (-e.mtime, e.rel))

    def folders(self) -> list[str]:
        """The top-level folders that hold images (txt2img-images, img2img-images, extras-images, ...)."""
        return sorted({e.folder for e in self.entries()})

    def models(self) -> list[str]:
        """Every model name the images' infotexts record."""
        return sorted({e.model for e in self.entries() if e.model}, key=str.lower)

    def browse(self, query: BrowseQuery) -> BrowsePage:
        """One page of the entries `query` selects."""
        selected = [e for e in self.entries() if matches(e, query)]
        size = max(1, int(query.page_size))
        pages = max(1, math.ceil(len(selected) / size))
        page = min(max(1, int(query.page)), pages)
        start = (page - 1) * size
        return BrowsePage(tuple(selected[start:start + size]), page, pages, len(selected))

    def _image_files(self) -> Iterator[Path]:
        if not self._root.is_dir():
            return
        for path in self._root.rglob("*"):
            rel_parts = path.relative_to(self._root).parts
            if any(part.startswith(".") for part in rel_parts):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.is_symlink():
                yield path

    def _entry(self, path: Path, mtime: float) -> ImageEntry:
        rel = path.relative_to(self._root).as_posix()
        try:
            infotext = self._read(path) or ""
        except (OSError, ValueError):
            infotext = ""
        prompt, model = split_infotext(infotext)
        folder = rel.split("/", 1)[0] if "/" in rel else ""
        date = dt.datetime.fromtimestamp(mtime).date().isoformat()
        return ImageEntry(path, rel, folder, date, mtime, infotext, prompt, model)


def matches(entry: ImageEntry, query: BrowseQuery) -> bool:
    """Whether `entry` passes every non-empty part of `query` (text: case-insensitive, in the prompt or the whole
    infotext; model: case-insensitive substring; folder: exact top-level folder; dates: inclusive)."""
    text = query.text.strip().lower()
    if text and text not in entry.prompt.lower() and text not in entry.infotext.lower():
        return False
    model = query.model.strip().lower()
    if model and model not in entry.model.lower():
        return False
    if query.folder and query.folder != entry.folder:
        return False
    if query.date_from and entry.date < _iso_date(query.date_from):
        return False
    return not (query.date_to and entry.date > _iso_date(query.date_to))


def _iso_date(value: str) -> str:
    """A `YYYY-MM-DD` date, or ValueError with a message a user can act on."""
    try:
        return dt.date.fromisoformat(value.strip()[:10]).isoformat()
    except ValueError:
        raise ValueError(f"Dates are written YYYY-MM-DD; got {value!r}.") from None
