"""Helpers for the built-in extensions' tests: their modules are imported as the loader imports them (each
extension folder as a package, so their relative imports work), without building an app."""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BUILTIN = Path(__file__).resolve().parents[2] / "extensions-builtin"


def builtin_module(folder: str, module: str) -> ModuleType:
    """`extensions-builtin/<folder>/<module>.py`, imported inside a package made for the folder."""
    package = "builtin_ext_test_" + folder.replace("-", "_")
    if package not in sys.modules:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(BUILTIN / folder)]
        sys.modules[package] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{package}.{module}")
