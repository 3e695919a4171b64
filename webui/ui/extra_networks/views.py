"""What the Extra Networks panel shows and does to the prompt, as plain functions (no Gradio): the card grid HTML,
preview thumbnails, the metadata view, and adding/removing a card's text in a prompt.

Why apart from the widgets: these are the parts with rules (A1111's add-or-remove behaviour, escaping, the size
of what reaches the browser); as plain functions they are tested directly, and txt2img and img2img share them.
"""
from __future__ import annotations

import base64
import html
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

# Cards rendered at most: 1,000 placeholder cards are ~300 KB of HTML; beyond that the search narrows the list.
MAX_CARDS = 1000
THUMBNAIL_SIZE = (192, 256)
# Text between the prompt and what a click adds (A1111's `extra_networks_add_text_separator`).
SEPARATOR = " "

KIND_NOUNS = {"checkpoints": "checkpoints", "textual_inversion": "embeddings", "lora": "LoRAs"}

# Styles for the grid, scoped by Gradio to the HTML component (so nothing leaks into the rest of the page).
CARDS_CSS = """
.en-summary { font-size: 0.85em; opacity: 0.8; margin: 2px 0 6px; }
.en-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr)); gap: 8px;
           max-height: 560px; overflow-y: auto; }
.en-card { position: relative; cursor: pointer; border: 1px solid var(--border-color-primary); border-radius: 8px;
           overflow: hidden; background: var(--background-fill-secondary); aspect-ratio: 3 / 4; }
.en-card:hover, .en-card:focus { border-color: var(--color-accent); outline: none; }
.en-card.en-active { box-shadow: 0 0 0 2px var(--color-accent); }
.en-thumb { width: 100%; height: 100%; display: flex; align-items: center; justify-content: center; }
.en-thumb img { width: 100%; height: 100%; object-fit: cover; }
.en-placeholder { font-size: 2.2em; font-weight: 600; opacity: 0.35; }
.en-name { position: absolute; left: 0; right: 0; bottom: 0; padding: 4px 6px; font-size: 0.85em; color: #fff;
           background: rgba(0, 0, 0, 0.6); overflow-wrap: anywhere; }
.en-details { position: absolute; top: 4px; right: 4px; border-radius: 50%; width: 26px; height: 26px;
              border: none; cursor: pointer; background: rgba(0, 0, 0, 0.6); color: #fff; }
"""

# Card clicks in the browser: one delegated listener (bound once, the grid is re-rendered under it) reports which
# card and whether its details button was pressed; the server does the rest.
CARDS_JS = """
if (!element.dataset.enBound) {
  element.dataset.enBound = '1';
  const fire = (event) => {
    const card = event.target.closest('[data-key]');
    if (!card || !element.contains(card)) return;
    const action = event.target.closest('.en-details') ? 'details' : 'use';
    trigger('click', {key: card.dataset.key, action: action});
  };
  element.addEventListener('click', fire);
  element.addEventListener('keydown', (event) => { if (event.key === 'Enter') fire(event); });
}
"""


class ThumbnailCache:
    """Small JPEG data URIs of preview images, keyed by file identity (path, size, mtime).

    Why data URIs: previews live next to the models, anywhere on disk, and Gradio serves only its allowed folders;
    inlined thumbnails need no file route, and a cached one costs a `stat`.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._items: OrderedDict[tuple[str, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def uri(self, path: str | Path) -> str | None:
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        uri = _thumbnail_uri(Path(path))
        if uri is not None:
            with self._lock:
                self._items[key] = uri
                while len(self._items) > self._limit:
                    self._items.popitem(last=False)
        return uri


def _thumbnail_uri(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            image.thumbnail(THUMBNAIL_SIZE)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=82)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _initials(name: str) -> str:
    letters = [part[0] for part in re.split(r"[\W_]+", name) if part]
    return html.escape("".join(letters[:2]).upper() or "?")


def cards_html(cards: Sequence[Mapping[str, Any]], kind: str, thumbnails: ThumbnailCache,
               limit: int = MAX_CARDS) -> str:
    """The grid: preview (or the name's initials), name, a details button; `data-key` is what a click acts on."""
    noun = KIND_NOUNS.get(kind, kind)
    if not cards:
        return f"<div class='en-summary'>No {noun} found. Put files in the folder and press refresh.</div>"
    shown = cards[:limit]
    summary = f"{len(cards)} {noun}" if len(shown) == len(cards) else \
        f"Showing {len(shown)} of {len(cards)} {noun}; type in the search box or pick a folder to see the others."
    parts = [f"<div class='en-summary'>{html.escape(summary)}</div><div class='en-grid'>"]
    for card in shown:
        key, name = html.escape(str(card["key"])), html.escape(str(card["name"]))
        tip = html.escape("\n".join(filter(None, (str(card.get("path") or ""), str(card.get("description") or "")))))
        uri = thumbnails.uri(card["preview"]) if card.get("preview") else None
        thumb = f"<img src='{uri}' alt='' loading='lazy'>" if uri else \
            f"<span class='en-placeholder'>{_initials(str(card['name']))}</span>"
        active = " en-active" if card.get("active") else ""
        parts.append(f"<div class='en-card{active}' data-key=\"{key}\" title=\"{tip}\" role='button' tabindex='0'>"
                     f"<div class='en-thumb'>{thumb}</div><div class='en-name'>{name}</div>"
                     f"<button type='button' class='en-details' title='Metadata and notes'>&#9432;</button></div>")
    parts.append("</div>")
    return "".join(parts)


def card_keys(cards: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(card["key"]) for card in cards]


# ----------------------------------------------------------------------------------------------------------------
# Metadata view

MAX_TAG_ROWS = 300
MAX_VALUE_CHARS = 400


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table class='en-table'>{head}<tbody>{body}</tbody></table>"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + f"… ({len(text):,} characters)"


def details_html(details: Mapping[str, Any]) -> str:
    """A card's metadata view: file facts, the kohya training summary (with the `ss_*` keys, as civitai and A1111
    users know them), tag frequency most frequent first, and every raw metadata key."""
    parts = [f"<h3>{html.escape(str(details['name']))}</h3>", _table((), details.get("info", ()))]
    training = details.get("training") or []
    if training:
        parts += ["<h4>Training</h4>", _table(("Field", "Key", "Value"),
                                              [(label, key, _short(value)) for key, label, value in training])]
    tags = details.get("tags") or []
    if tags:
        note = f" (first {MAX_TAG_ROWS} of {len(tags)})" if len(tags) > MAX_TAG_ROWS else ""
        parts += [f"<h4>Tag frequency{note}</h4>", _table(("Tag", "Count"), tags[:MAX_TAG_ROWS])]
    metadata = details.get("metadata") or {}
    if metadata:
        rows = [(key, _short(metadata[key])) for key in sorted(metadata)]
        parts.append(f"<details><summary>All metadata ({len(rows)} keys)</summary>{_table(('Key', 'Value'), rows)}"
                     f"</details>")
    elif not training:
        parts.append("<p>No training metadata in this file.</p>")
    return "<div class='en-details-view'>" + "".join(parts) + "</div>"


# ----------------------------------------------------------------------------------------------------------------
# Prompt text: a click adds the card's text, a second click removes it (A1111's behaviour)

_NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")
_LORA_KINDS = frozenset({"lora", "lyco"})


def _append(prompt: str, text: str) -> str:
    if not text:
        return prompt
    stripped = prompt.rstrip()
    return f"{stripped}{SEPARATOR}{text}" if stripped else text


def _cut(prompt: str, start: int, end: int, following: str = "") -> str:
    """`prompt` without [start, end) and without `following` right after it (whitespace allowed between); the
    two sides are joined with one separator (a newline if there was one), and a doubled comma becomes one."""
    head, tail = prompt[:start], prompt[end:]
    if following and tail.lstrip().startswith(following):
        tail = tail.lstrip()[len(following):]
    head_kept, tail_kept = head.rstrip(), tail.lstrip()
    if not head_kept:
        return tail_kept.lstrip(", ")
    if not tail_kept:
        return head_kept
    if tail_kept.startswith(","):
        return head_kept + (tail_kept[1:] if head_kept.endswith(",") else tail_kept)
    gap = head[len(head_kept):] + tail[: len(tail) - len(tail_kept)]
    return head_kept + ("\n" if "\n" in gap else SEPARATOR) + tail_kept


def toggle_lora(prompt: str, name: str, tag: str, activation: str = "") -> tuple[str, bool]:
    """Add `tag` (+ activation text) unless a `<lora:name:...>`/`<lyco:name:...>` tag is there; then remove every
    such tag and the activation text right after it. Returns (prompt, added)."""
    found = [m for m in _NETWORK_TAG.finditer(prompt)
             if m.group(1).lower() in _LORA_KINDS and m.group(2).split(":")[0].strip() == name]
    if not found:
        return _append(prompt, f"{tag}{SEPARATOR}{activation}" if activation else tag), True
    for match in reversed(found):
        prompt = _cut(prompt, match.start(), match.end(), activation)
    return prompt.strip(), False


def _word_pattern(word: str) -> re.Pattern[str]:
    """`word` standing alone: not part of a longer name (embedding names often contain `-` and `_`)."""
    return re.compile(rf"(?<![\w\-]){re.escape(word)}(?![\w\-])")


def toggle_word(prompt: str, word: str) -> tuple[str, bool]:
    """Add `word` (an embedding name) unless it is in the prompt; then remove every occurrence."""
    found = list(_word_pattern(word).finditer(prompt)) if word else []
    if not found:
        return _append(prompt, word), True
    for match in reversed(found):
        prompt = _cut(prompt, match.start(), match.end())
    return prompt.strip(), False


def add_text(prompt: str, text: str) -> str:
    """Append `text` unless it is already there (a LoRA's negative text when its card is added)."""
    return prompt if not text or text in prompt else _append(prompt, text)


def remove_text(prompt: str, text: str) -> str:
    """Remove the first occurrence of `text` (a LoRA's negative text when its card is removed)."""
    start = prompt.find(text) if text else -1
    return prompt if start < 0 else _cut(prompt, start, start + len(text)).strip()
