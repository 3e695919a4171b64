"""Tag autocomplete: suggestions under the txt2img/img2img prompt boxes while typing, from tag CSV files
(a1111-sd-webui-tagcomplete's `tag,category,count,"aliases"` format), LoRA names (`<lora:`) and embedding names.

Written only against `webui.extensions.api`. The page script (`javascript/tagcomplete.js`, added with `add_js`)
asks this extension's route `GET /ext/tag-autocomplete/tags?q=<word>` for the word under the cursor; the route
matches on the server, so large tag files never travel to the browser. Tag files: every `*.csv` in this
extension's `tags/` folder and in `<data>/tags/` (yours, kept across updates).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from webui.extensions.api import ExtensionContext

from .tag_index import TagFiles, suggest

NAMES_TTL_S = 5.0  # LoRA/embedding names are re-listed at most this often (a keystroke must not rescan folders)


class NetworkNames:
    """LoRA and embedding names from the networks service, cached for a few seconds."""

    def __init__(self, networks: Any, clock: Callable[[], float] = time.monotonic):
        self._networks = networks
        self._clock = clock
        self._at = -NAMES_TTL_S
        self._names: tuple[list[str], list[str]] = ([], [])

    def names(self) -> tuple[list[str], list[str]]:
        if self._clock() - self._at >= NAMES_TTL_S:
            loras = sorted({str(row["name"]) for row in self._networks.lora_list()}, key=str.lower)
            listed = self._networks.embedding_list()
            embeddings = sorted({*listed.get("loaded", {}), *listed.get("skipped", {})}, key=str.lower)
            self._names = (loras, embeddings)
            self._at = self._clock()
        return self._names


class TagComplete:
    """The route's handler: tag files from both folders, names from the networks service."""

    def __init__(self, ext: ExtensionContext):
        self._ext = ext
        self._files = [TagFiles(ext.paths.extension_dir / "tags"), TagFiles(ext.paths.data_dir / "tags")]
        self._names = NetworkNames(ext.service("networks"))

    def tags(self, q: str = "", limit: int = 0) -> dict[str, Any]:
        """`{"query": q, "suggestions": [{"value", "label", "kind", "count", "alias"}, ...]}`, best first."""
        most = int(self._ext.setting("tag_autocomplete_max_results") or 20)
        count = max(1, min(most, limit)) if limit > 0 else most
        tags = [tag for files in self._files for tag in files.tags()]
        loras, embeddings = self._names.names()
        found = suggest(q[:200], tags, loras, embeddings, limit=count,
                        replace_underscores=bool(self._ext.setting("tag_autocomplete_replace_underscores")))
        return {"query": q, "suggestions": [s.as_json() for s in found]}


def setup(ext: ExtensionContext) -> None:
    ext.add_setting("tag_autocomplete_max_results", 20, "Suggestions shown at most", section="Tag autocomplete")
    ext.add_setting("tag_autocomplete_replace_underscores", True,
                    "Write tags with spaces instead of underscores", section="Tag autocomplete")
    complete = TagComplete(ext)
    ext.add_api_route("/tags", complete.tags, page=True)  # fetched by the page script, under the UI login
    folder = ext.paths.extension_dir
    script = (folder / "javascript" / "tagcomplete.js").read_text(encoding="utf-8")
    ext.add_js(script.replace("__TAGCOMPLETE_ROUTE__", f"{ext.route_prefix}/tags"))
    ext.add_css((folder / "style.css").read_text(encoding="utf-8"))
