"""Installing an extension's declared Python requirements with pip, only after the user confirmed the list.

Why each line is parsed first: a requirement string goes onto pip's command line, so only real requirement
specifiers (PEP 508) are accepted; anything looking like an option (`--index-url ...`) is refused.
"""
from __future__ import annotations

import subprocess
import sys

from packaging.requirements import InvalidRequirement, Requirement

from webui.core.errors import ValidationError, WebUIError

PIP_SECONDS = 900


def checked_requirements(requirements: tuple[str, ...]) -> list[str]:
    """The requirements as pip gets them; `ValidationError` naming any that is not a requirement specifier."""
    checked = []
    for text in requirements:
        try:
            if text.strip().startswith("-"):
                raise InvalidRequirement("options are not allowed")
            checked.append(str(Requirement(text)))
        except InvalidRequirement as exc:
            raise ValidationError(f"Not a Python requirement: {text!r} ({exc}).") from exc
    return checked


def pip_install(requirements: tuple[str, ...]) -> str:
    """Run `python -m pip install <requirements>` in this interpreter's environment; returns pip's last lines."""
    args = checked_requirements(requirements)
    if not args:
        return "Nothing to install."
    try:
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args],
                                capture_output=True, text=True, timeout=PIP_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WebUIError(f"pip took longer than {PIP_SECONDS} s and was stopped.") from exc
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
    if result.returncode != 0:
        raise WebUIError(f"pip install failed:\n{tail}")
    return tail
