"""The Extra Networks panel's widget values -> the services' card query."""
from __future__ import annotations

from collections.abc import Mapping

from webui.ui.sentinels import ALL_FOLDERS

# Sort widget label -> the services' sort key (`NetworkService.extra_network_cards`).
EXTRA_NETWORK_SORTS: Mapping[str, str] = {"Name": "name", "Date modified": "date", "Size": "size"}
# A1111's choices for a sidecar's "sd version".
SD_VERSIONS: tuple[str, ...] = ("Unknown", "SD1", "SD2", "SDXL")


def extra_network_query(sort_label: str | None, folder: str | None) -> tuple[str, str]:
    """(sort key, folder filter) for the panel's widgets; "All" folders means no filter."""
    sort = EXTRA_NETWORK_SORTS.get(sort_label or "", "name")
    return sort, "" if not folder or folder == ALL_FOLDERS else folder
