"""Tag suggestions for the prompt boxes: tags from CSV files in the a1111-sd-webui-tagcomplete format
(`tag,category,count,"alias1,alias2"`), plus `<lora:name:1>` calls and embedding names.

Why server-side matching: tag lists run to hundreds of thousands of rows; sending them to the browser on every
page load costs megabytes, while a prefix query answers in a few milliseconds and a few hundred bytes. Files are
re-read only when their modification time changes. Pure Python (csv from the standard library).
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# a1111-sd-webui-tagcomplete's category numbers (danbooru's): general, artist, copyright, character, meta.
CATEGORY_NAMES = {0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "meta"}
_LORA_RE = re.compile(r"^<(lora|lyco):([^:>]*)$", re.IGNORECASE)
_ESCAPE_RE = re.compile(r"([()\[\]])")


@dataclass(frozen=True)
class Tag:
    """One CSV row: the tag as written in the file (underscores kept), its category number, post count, aliases."""

    name: str
    category: int
    count: int
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suggestion:
    """One entry of the drop-down: `value` is what replaces the typed word in the prompt box."""

    value: str
    label: str
    kind: str
    count: int = 0
    alias: str = ""

    def as_json(self) -> dict[str, object]:
        return {"value": self.value, "label": self.label, "kind": self.kind, "count": self.count,
                "alias": self.alias}


def parse_tag_rows(rows: Iterable[Sequence[str]]) -> list[Tag]:
    """Tags from CSV rows; rows without a tag or with a non-numeric category/count are skipped (tag files in the
    wild carry headers and comments)."""
    tags: list[Tag] = []
    for row in rows:
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        try:
            category = int(row[1]) if len(row) > 1 and row[1].strip() else 0
            count = int(float(row[2])) if len(row) > 2 and row[2].strip() else 0
        except ValueError:
            continue
        aliases = tuple(a.strip() for a in row[3].split(",") if a.strip()) if len(row) > 3 else ()
        tags.append(Tag(row[0].strip(), category, count, aliases))
    return tags


class TagFiles:
    """The tags of every `*.csv` file in `folder` (sorted by name, so the file order is stable)."""

    def __init__(self, folder: Path):
        self._folder = folder
        self._cache: dict[Path, tuple[float, list[Tag]]] = {}

    def tags(self) -> list[Tag]:
        files = sorted(self._folder.glob("*.csv")) if self._folder.is_dir() else []
        fresh: dict[Path, tuple[float, list[Tag]]] = {}
        for path in files:
            mtime = path.stat().st_mtime
            cached = self._cache.get(path)
            if cached is None or cached[0] != mtime:
                with path.open(encoding="utf-8", newline="", errors="replace") as handle:
                    cached = (mtime, parse_tag_rows(csv.reader(handle)))
            fresh[path] = cached
        self._cache = fresh
        return [tag for _, tags in fresh.values() for tag in tags]


def tag_text(name: str, *, replace_underscores: bool = True) -> str:
    """How a tag is written into a prompt: spaces for underscores (tagcomplete's default) and parentheses and
    brackets escaped, so `smile_(happy)` does not become A1111 emphasis."""
    text = name.replace("_", " ") if replace_underscores else name
    return _ESCAPE_RE.sub(r"\\\1", text)


def suggest(word: str, tags: Sequence[Tag], loras: Sequence[str], embeddings: Sequence[str], *,
            limit: int = 20, replace_underscores: bool = True) -> list[Suggestion]:
    """Suggestions for the word being typed. `<lora:` / `<lyco:` + prefix lists LoRA names; any other word lists
    tags (by name or alias), then embeddings, best first: prefix matches before substring ones, then by count."""
    word = word.strip()
    lora_call = _LORA_RE.match(word)
    if lora_call:
        return _network_suggestions(lora_call.group(1).lower(), lora_call.group(2), loras, limit)
    if word.startswith("<"):
        return _network_suggestions("lora", word[1:], loras, limit)
    key = _normal(word)
    if not key:
        return []
    scored: list[tuple[tuple[int, int, str], Suggestion]] = []
    for tag in tags:
        rank, alias = _tag_rank(tag, key)
        if rank is not None:
            label = CATEGORY_NAMES.get(tag.category, str(tag.category))
            suggestion = Suggestion(tag_text(tag.name, replace_underscores=replace_underscores), tag.name,
                                    label, tag.count, alias)
            scored.append(((rank, -tag.count, tag.name.lower()), suggestion))
    for name in embeddings:
        normal = _normal(name)
        if key in normal:
            rank = 0 if normal.startswith(key) else 2
            scored.append(((rank, 0, name.lower()), Suggestion(name, name, "embedding")))
    scored.sort(key=lambda item: item[0])
    return [s for _, s in scored[:limit]]


def _tag_rank(tag: Tag, key: str) -> tuple[int | None, str]:
    """0: the tag starts with the key; 1: an alias does; 2: the tag contains it; None: no match."""
    name = _normal(tag.name)
    if name.startswith(key):
        return 0, ""
    for alias in tag.aliases:
        if _normal(alias).startswith(key):
            return 1, alias
    if key in name:
        return 2, ""
    return None, ""


def _network_suggestions(kind: str, prefix: str, names: Sequence[str], limit: int) -> list[Suggestion]:
    key = prefix.lower()
    found = sorted((n for n in names if key in n.lower()), key=lambda n: (not n.lower().startswith(key), n.lower()))
    return [Suggestion(f"<{kind}:{n}:1>", n, "lora") for n in found[:limit]]


def _normal(text: str) -> str:
    return text.strip().lower().replace(" ", "_")
