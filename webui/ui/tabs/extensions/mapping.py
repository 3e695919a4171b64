"""Rows and messages of the Extensions tab, from the extension service's answers (pure formatting)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from webui.services.extension_service import ExtensionInfo

INSTALLED_HEADERS = ["Extension", "Description", "Source", "Version", "Commit", "Date", "Built-in", "Status",
                     "Updates"]
AVAILABLE_HEADERS = ["Extension", "URL", "Description", "Tags", "Installed"]


def installed_rows(infos: Sequence[ExtensionInfo], updates: Mapping[str, str] | None = None) -> list[list[str]]:
    updates = updates or {}
    return [[info.name, info.description, info.source, info.version, info.repo.commit_hash[:8],
             commit_date_text(info.repo.commit_date), "yes" if info.builtin else "", info.status,
             updates.get(info.name, "")] for info in infos]


def failures_markdown(infos: Sequence[ExtensionInfo]) -> str:
    """The traceback of every extension switched off this session (empty when none failed)."""
    failed = [info for info in infos if info.error]
    return "\n\n".join(f"**{info.name}** ({info.status}):\n```\n{info.error.strip()}\n```" for info in failed)


def commit_date_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M") if seconds else ""


def refused_markdown(reason: str) -> str:
    return f"**Refused:** {reason}" if reason else ""
