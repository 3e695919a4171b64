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


@dataclass(frozen=True)
class _File:
    """What a directory scan knows about an image without opening it."""

    path: Path
    rel: str
    folder: str
    date: str
    mtime: float
    key: tuple[int, float]


class OutputIndex:
    """Lists images under `root` (skipping the trash folder and hidden folders) and filters them.

    `read_infotext(path)` returns an image file's infotext ("" when it has none). It is called only when needed
    (a text or model filter, the images of the page shown, the model list) and once per file version: a folder of
    tens of thousands of images opens on its first page without reading them all.
    """

    def __init__(self, root: Path, read_infotext: Callable[[Path], str]):
        self._root = root
        self._read = read_infotext
        self._info: dict[Path, tuple[tuple[int, float], tuple[str, str, str]]] = {}

    @property
    def root(self) -> Path:
        return self._root

    def entries(self) -> list[ImageEntry]:
        """Every image, newest first (by modification time, then path for a stable order)."""
        files = self._scan()
        self._forget_gone(files)
        return [self._entry(f) for f in files]

    def folders(self) -> list[str]:
        """The top-level folders that hold images (txt2img-images, img2img-images, extras-images, ...)."""
        return sorted({f.folder for f in self._scan()})

    def models(self) -> list[str]:
        """Every model name the images' infotexts record (reads every image not read yet)."""
        return sorted({e.model for e in self.entries() if e.model}, key=str.lower)

    def browse(self, query: BrowseQuery) -> BrowsePage:
        """One page of the entries `query` selects (ValueError for a date that is not YYYY-MM-DD)."""
        for value in (query.date_from, query.date_to):
            if value:
                _iso_date(value)
        files = [f for f in self._scan() if _file_matches(f, query)]
        if query.text.strip() or query.model.strip():
            selected = [e for e in (self._entry(f) for f in files) if matches(e, query)]
        else:
            selected = files
        size = max(1, int(query.page_size))
        pages = max(1, math.ceil(len(selected) / size))
        page = min(max(1, int(query.page)), pages)
        start = (page - 1) * size
        shown = tuple(item if isinstance(item, ImageEntry) else self._entry(item)
                      for item in selected[start:start + size])
        return BrowsePage(shown, page, pages, len(selected))

    def _scan(self) -> list[_File]:
        found: list[_File] = []
        for path in self._image_files():
            try:
                stat = path.stat()
            except OSError:
                continue
            rel = path.relative_to(self._root).as_posix()
            folder = rel.split("/", 1)[0] if "/" in rel else ""
            date = dt.datetime.fromtimestamp(stat.st_mtime).date().isoformat()
            found.append(_File(path, rel, folder, date, stat.st_mtime, (stat.st_size, stat.st_mtime)))
        return sorted(found, key=lambda f: (-f.mtime, f.rel))

    def _forget_gone(self, files: list[_File]) -> None:
        present = {f.path for f in files}
        for path in [p for p in self._info if p not in present]:
            del self._info[path]

    def _image_files(self) -> Iterator[Path]:
        if not self._root.is_dir():
            return
        for path in self._root.rglob("*"):
            rel_parts = path.relative_to(self._root).parts
            if any(part.startswith(".") for part in rel_parts):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.is_symlink():
                yield path

    def _entry(self, file: _File) -> ImageEntry:
        cached = self._info.get(file.path)
        if cached is None or cached[0] != file.key:
            try:
                infotext = self._read(file.path) or ""
            except (OSError, ValueError):
                infotext = ""
            cached = (file.key, (infotext, *split_infotext(infotext)))
            self._info[file.path] = cached
        infotext, prompt, model = cached[1]
        return ImageEntry(file.path, file.rel, file.folder, file.date, file.mtime, infotext, prompt, model)


def _file_matches(file: _File | ImageEntry, query: BrowseQuery) -> bool:
    """The filters a directory scan can answer: folder and dates."""
    if query.folder and query.folder != file.folder:
        return False
    if query.date_from and file.date < _iso_date(query.date_from):
        return False
    return not (query.date_to and file.date > _iso_date(query.date_to))


def matches(entry: ImageEntry, query: BrowseQuery) -> bool:
    """Whether `entry` passes every non-empty part of `query` (text: case-insensitive, in the prompt or the whole
    infotext; model: case-insensitive substring; folder: exact top-level folder; dates: inclusive)."""
    text = query.text.strip().lower()
    if text and text not in entry.prompt.lower() and text not in entry.infotext.lower():
        return False
    model = query.model.strip().lower()
    if model and model not in entry.model.lower():
        return False
    return _file_matches(entry, query)


def _iso_date(value: str) -> str:
    """A `YYYY-MM-DD` date, or ValueError with a message a user can act on."""
    try:
        return dt.date.fromisoformat(value.strip()[:10]).isoformat()
    except ValueError:
        raise ValueError(f"Dates are written YYYY-MM-DD; got {value!r}.") from None
