"""Where a path typed by a client may point: the UI's folder boxes, the API's `outdir_*` options, training forms.

Why: whoever can reach the UI or the API could otherwise read or write any file the server's user can (an
`outdir_txt2img_samples` of `../../../tmp/x` wrote images there; a dataset folder of `/home/...` listed captions).
So a client path is taken relative to the data folder and must stay inside it, or inside a folder the server's
owner allowed with a launch flag (`--gradio-allowed-path`, the model folders). Values the owner sets by hand
(`config.json`, launch flags) never pass through here: the owner may point them anywhere.

Why refuse instead of "fixing" a value: a user who typed `..` or an absolute folder meant a real place on the
server; silently writing somewhere else would be worse than a message saying what is accepted.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from webui.core.errors import ValidationError
from webui.core.settings import Settings

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
HINT = ("Use a path relative to the data folder, or one inside a folder the server's owner allowed with "
        "--gradio-allowed-path.")


class PathNotAllowedError(ValidationError):
    """A client path outside the folders it may use, or one this server does not accept at all."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass(frozen=True)
class PathPolicy:
    """The folders client paths may use. `roots` are resolved absolute folders (the data folder first);
    `hide_dir_config` is A1111's `--hide-ui-dir-config`: folder fields are not offered and free folder values
    are refused (set on an exposed server)."""

    data_dir: Path
    roots: tuple[Path, ...]
    hide_dir_config: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PathPolicy:
        """The data folder, the outputs folder (it may be a link the owner made) and `--gradio-allowed-path`."""
        paths = settings.paths
        roots = (paths.data_dir, paths.outputs_dir, *settings.security.allowed_paths)
        return cls(paths.data_dir, _unique_resolved(roots), settings.hide_dir_config)

    def with_roots(self, extra: Iterable[Path]) -> PathPolicy:
        """The same policy with more allowed folders (the model folders, for a training base model)."""
        return PathPolicy(self.data_dir, _unique_resolved((*self.roots, *extra)), self.hide_dir_config)

    def refuse_if_hidden(self, what: str) -> None:
        """Raise when folder fields are turned off: then no client may name a server folder for `what`."""
        if self.hide_dir_config:
            raise PathNotAllowedError(
                f"{what} cannot be set from the UI or the API on this server: server folders are hidden because "
                "it is reachable from the network (--hide-ui-dir-config). Its owner can allow this by starting it "
                "with --enable-insecure-extension-access.")

    def resolve(self, value: object, what: str) -> Path:
        """The real absolute path a client's `value` names, or `PathNotAllowedError` saying why it is refused.

        Relative values are inside the data folder; an absolute value is accepted only when it lies in one of the
        allowed folders. `..`, backslashes, `~` and NUL are refused outright; links are followed, so a link that
        leads out of the allowed folders is refused too.
        """
        text = self.check_text(value, what)
        path = Path(text) if text.startswith("/") else self.data_dir / text
        real = Path(os.path.realpath(path))
        if not any(_inside(real, root) for root in self.roots):
            reason = "is outside the data folder" if text.startswith("/") else \
                "leads outside the data folder through a link"
            raise PathNotAllowedError(f"{what} '{text}' {reason}. {HINT}")
        return real

    def check_text(self, value: object, what: str) -> str:
        """The value, stripped, when its spelling is acceptable (no containment check: see `resolve`)."""
        if not isinstance(value, str):
            raise PathNotAllowedError(f"{what} must be a folder or file name as text.")
        text = value.strip()
        if not text:
            raise PathNotAllowedError(f"{what} is empty.")
        if "\x00" in text:
            raise PathNotAllowedError(f"{what} must not contain NUL characters.")
        if "\\" in text:
            raise PathNotAllowedError(f"{what} '{text}' contains a backslash; separate folders with '/'.")
        if text.startswith("~") or _WINDOWS_DRIVE.match(text):
            raise PathNotAllowedError(f"{what} '{text}' is not a path on this server. {HINT}")
        if ".." in PurePosixPath(text).parts:
            raise PathNotAllowedError(f"{what} '{text}' contains '..'. {HINT}")
        return text

    def public_path(self, path: Path, named_roots: Iterable[Path] = ()) -> str:
        """A server file as a client may see it: relative to the data folder; a file of another configured folder
        (a `--ckpt-dir` outside the data folder) as `<folder name>/<rest>`; else only its name."""
        path = Path(path)
        if _inside(path, self.data_dir):
            return path.relative_to(self.data_dir).as_posix()
        for root in named_roots:
            root = Path(root)
            if _inside(path, root):
                return (PurePosixPath(root.name) / path.relative_to(root).as_posix()).as_posix()
        return path.name


def _unique_resolved(folders: Iterable[Path]) -> tuple[Path, ...]:
    seen: dict[Path, None] = {}
    for folder in folders:
        seen.setdefault(Path(os.path.realpath(Path(folder).expanduser())), None)
    return tuple(seen)
