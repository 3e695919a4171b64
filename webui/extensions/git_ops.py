"""The git commands behind installing, describing and updating extensions.

Why subprocess and not a library: `git` is what A1111 users have and what every extension's URL is made for; the
commands are few and each runs with a timeout, without a terminal prompt (a URL that asks for a password fails
instead of hanging the server) and with its arguments after `--` (a URL cannot pass itself off as an option).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from webui.core.errors import ValidationError, WebUIError

CLONE_SECONDS = 300
QUERY_SECONDS = 30
# scp-like user@host:path with a host that cannot pass for an ssh option (no leading '-')
URL_PATTERN = re.compile(r"^(https?|git|ssh|file)://[A-Za-z0-9\[/][^\s]*$|^[\w.\-]+@[A-Za-z0-9][\w.\-]*:[^\s]+$")


@dataclass(frozen=True)
class RepoInfo:
    """What A1111's /sdapi/v1/extensions reports about an extension's folder ("" when it is not a git checkout)."""

    remote: str = ""
    branch: str = ""
    commit_hash: str = ""
    commit_date: int = 0  # unix seconds, as A1111


def _git(args: list[str], cwd: Path | None = None, timeout: int = QUERY_SECONDS) -> subprocess.CompletedProcess:
    if shutil.which("git") is None:
        raise WebUIError("git is not installed on the server; extensions cannot be installed or updated.")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "echo"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise WebUIError(f"git {args[0]} took longer than {timeout} s and was stopped.") from exc


def folder_name_for(url: str) -> str:
    """The folder a URL is cloned into: its last path part without `.git` (A1111's rule)."""
    url = url.strip()
    if not URL_PATTERN.match(url):
        raise ValidationError(f"Not a git repository URL: {url!r} (expected https://, ssh://, git://, file:// or "
                              "user@host:path).")
    name = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", name):
        raise ValidationError(f"Cannot name a folder after {url!r}.")
    return name


def clone(url: str, target: Path, branch: str = "") -> None:
    """`git clone url target` (a branch when given); on failure nothing is left at `target`."""
    args = ["clone", *(["--branch", branch] if branch else []), "--", url.strip(), str(target)]
    result = _git(args, timeout=CLONE_SECONDS)
    if result.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise WebUIError(f"git clone failed: {_last_line(result.stderr)}")


def repo_info(folder: Path) -> RepoInfo:
    """Remote URL, branch, commit and commit date of a checkout (empty values for a plain folder)."""
    if not (folder / ".git").exists() or shutil.which("git") is None:
        return RepoInfo()
    head = _git(["log", "-1", "--format=%H %ct"], cwd=folder).stdout.split()
    return RepoInfo(remote=_git(["config", "--get", "remote.origin.url"], cwd=folder).stdout.strip(),
                    branch=_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd=folder).stdout.strip(),
                    commit_hash=head[0] if head else "", commit_date=int(head[1]) if len(head) > 1 else 0)


def behind_count(folder: Path) -> int:
    """How many commits the checkout is behind its upstream, after fetching (WebUIError when it cannot tell)."""
    fetched = _git(["fetch", "--quiet"], cwd=folder, timeout=CLONE_SECONDS)
    if fetched.returncode != 0:
        raise WebUIError(f"git fetch failed: {_last_line(fetched.stderr)}")
    counted = _git(["rev-list", "--count", "HEAD..@{u}"], cwd=folder)
    if counted.returncode != 0:
        raise WebUIError(f"No upstream branch to compare with: {_last_line(counted.stderr)}")
    return int(counted.stdout.strip() or 0)


def pull(folder: Path) -> str:
    """Fast-forward the checkout to its upstream; returns the new commit."""
    result = _git(["pull", "--ff-only", "--quiet"], cwd=folder, timeout=CLONE_SECONDS)
    if result.returncode != 0:
        raise WebUIError(f"git pull failed: {_last_line(result.stderr)}")
    return repo_info(folder).commit_hash


def commit_date_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M") if seconds else ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
