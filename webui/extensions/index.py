"""The "Available" list: an index of extensions read from a URL (A1111's `index.json` shape).

Why it may say "offline": the server often has no internet; then the tab says so and lists nothing, rather than
hanging or showing a stale list as if it were current.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

INDEX_SECONDS = 10
MAX_INDEX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class IndexEntry:
    name: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexResult:
    """The entries, or `error` saying why there are none (offline, a bad URL, not JSON)."""

    entries: tuple[IndexEntry, ...] = ()
    error: str = ""


def read_index(url: str) -> IndexResult:
    """Fetch and parse the index at `url` (http(s) or file)."""
    url = (url or "").strip()
    if not url:
        return IndexResult(error="No extension index URL is set (Settings: extensions_index_url).")
    if not url.startswith(("http://", "https://", "file://")):
        return IndexResult(error=f"The extension index URL must start with http://, https:// or file:// ({url}).")
    try:
        with urllib.request.urlopen(url, timeout=INDEX_SECONDS) as response:  # noqa: S310 - scheme checked above
            raw = response.read(MAX_INDEX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return IndexResult(error=f"Could not read the extension index at {url} ({reason}): the server is probably "
                                 "offline. Nothing is listed.")
    if len(raw) > MAX_INDEX_BYTES:
        return IndexResult(error=f"The extension index at {url} is larger than {MAX_INDEX_BYTES} bytes.")
    try:
        return IndexResult(entries=parse_index(json.loads(raw)))
    except (ValueError, TypeError, AttributeError) as exc:
        return IndexResult(error=f"The extension index at {url} is not a valid index: {exc}.")


def parse_index(data: object) -> tuple[IndexEntry, ...]:
    """A1111's shape `{"extensions": [{"name", "url", "description", "tags"}]}` (or a bare list of those)."""
    items = data.get("extensions", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("'extensions' is not a list")
    entries = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("url"), str) and item.get("url"):
            entries.append(IndexEntry(str(item.get("name") or item["url"]), item["url"],
                                      str(item.get("description") or ""),
                                      tuple(str(t) for t in item.get("tags") or ())))
    return tuple(entries)
