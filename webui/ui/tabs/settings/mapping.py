"""The Settings tab's result line."""
from __future__ import annotations

from collections.abc import Sequence


def settings_message(changed: Sequence[str]) -> str:
    """A1111's result line after "Apply settings"."""
    if not changed:
        return "Nothing changed."
    return f"{len(changed)} setting{'s' if len(changed) != 1 else ''} changed: {', '.join(changed)}."
