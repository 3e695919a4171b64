"""The order extensions' hooks run in, from the manifests' `before`/`after` lists.

Why a stable topological order: with no constraints the order is by name, so the same set of extensions always
runs the same way; a cycle cannot be honoured, so its members keep name order (and a warning is logged).
"""
from __future__ import annotations

import logging

from webui.extensions.api import Manifest

log = logging.getLogger("extensions")


def hook_order(manifests: list[Manifest]) -> list[str]:
    """Names in hook order: every `after` name comes earlier, every `before` name later (unknown names are
    ignored)."""
    names = sorted({m.name for m in manifests})
    follows: dict[str, set[str]] = {name: set() for name in names}  # name -> names that must run first
    for manifest in manifests:
        for other in manifest.after:
            if other in follows and other != manifest.name:
                follows[manifest.name].add(other)
        for other in manifest.before:
            if other in follows and other != manifest.name:
                follows[other].add(manifest.name)
    ordered: list[str] = []
    remaining = dict(follows)
    while remaining:
        ready = [name for name in sorted(remaining) if not (remaining[name] - set(ordered))]
        if not ready:
            log.warning("Extensions %s name each other in before/after; they run in name order.",
                        ", ".join(sorted(remaining)))
            ready = sorted(remaining)
        name = ready[0]  # one at a time: the next choice sees it placed
        ordered.append(name)
        del remaining[name]
    return ordered
