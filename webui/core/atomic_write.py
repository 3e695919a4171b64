"""Replace a small file so that a crash, a full disk or a bad value never leaves it half written.

Why a helper: settings and other state files are rewritten while the app runs; a plain `write_text` that dies
midway leaves a truncated file that the next start cannot read. Here the new content goes to a temp file in the
same folder, is flushed to disk, and only then renamed over the old file (atomic on POSIX and Windows), so a reader
sees either the old or the new file. The temp file is removed on any error, and the file keeps its permissions:
a file the user made private (chmod 600) stays private. Pure Python.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

_NEW_FILE_MODE = 0o666  # narrowed by the process umask, as for any file the app creates
_PRIVATE_MODE = 0o600  # temp files start private; the target's own mode is applied before any byte is written
_NAME_TRIES = 16


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, keeping the mode of an existing `path`. Raises OSError on failure,
    with the old file untouched and no temp file left behind."""
    path = Path(path)
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    fd, temp = _open_temp(path, _NEW_FILE_MODE if mode is None else _PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None and not hasattr(os, "fchmod"):
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def write_new_file(path: Path, data: bytes, mode: int = _NEW_FILE_MODE) -> None:
    """Create `path` with `data`; never overwrites (FileExistsError when it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise


def _open_temp(path: Path, mode: int) -> tuple[int, Path]:
    """A new, exclusively created temp file next to `path` (same file system, so the rename is atomic)."""
    for _ in range(_NAME_TRIES):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a temp file next to {path}")


def _sync_folder(folder: Path) -> None:
    """Flush the rename itself (the folder entry) where the platform allows it; best effort."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
