"""Finding extension folders, ordering them and running their `setup(ext)`.

Why each step is guarded: a manifest that does not parse, a module that fails to import or a `setup` that
raises must cost only that extension; the record keeps the reason for the Extensions tab and the log.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from webui.core.errors import WebUIError
from webui.core.options import option_spec
from webui.extensions.api import ExtensionContext, ExtensionError, Manifest
from webui.extensions.isolation import Failure, failure_from
from webui.extensions.manifest import read_manifest
from webui.extensions.ordering import hook_order
from webui.extensions.registry import ExtensionRecord, ExtensionRegistry

ContextFactory = Callable[[Manifest, Path], ExtensionContext]


@dataclass(frozen=True)
class LoadPlan:
    """Where to look and what is off: `roots` as (folder, builtin) pairs, the user's disabled names
    (config.json's `disabled_extensions`), and A1111's `--disable-all-extensions` / `--disable-extra-extensions`."""

    roots: tuple[tuple[Path, bool], ...]
    disabled: frozenset[str] = frozenset()
    disable_all: bool = False
    disable_extra: bool = False

    def enabled(self, name: str, builtin: bool) -> bool:
        if self.disable_all or (self.disable_extra and not builtin):
            return False
        return name not in self.disabled


def discover(plan: LoadPlan, registry: ExtensionRegistry) -> None:
    """Add a record for every extension folder under the roots (built-in first), in name order. A folder whose
    manifest is wrong, or whose name another one already took, is recorded as failed."""
    for root, builtin in plan.roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            _discover_one(folder, builtin, plan, registry)


def _discover_one(folder: Path, builtin: bool, plan: LoadPlan, registry: ExtensionRegistry) -> None:
    try:
        manifest = read_manifest(folder)
    except WebUIError as exc:
        manifest = Manifest(name=folder.name)
        if registry.record(folder.name) is None:
            registry.add(ExtensionRecord(manifest, folder, builtin, plan.enabled(folder.name, builtin),
                                         failure=Failure(folder.name, "manifest", str(exc))))
        return
    if registry.record(manifest.name) is not None:
        other = registry.record(manifest.name)
        registry.add(ExtensionRecord(manifest, folder, builtin, False, failure=Failure(
            manifest.name, "manifest", f"the name is taken by {other.path if other else '?'}; {folder} is skipped")))
        return
    registry.add(ExtensionRecord(manifest, folder, builtin, plan.enabled(manifest.name, builtin)))


def load_all(plan: LoadPlan, registry: ExtensionRegistry, make_context: ContextFactory) -> None:
    """Discover, order by the manifests' before/after, then import and set up every enabled extension."""
    discover(plan, registry)
    records = registry.records()
    registry.set_order(hook_order([r.manifest for r in records]))
    taken_settings: set[str] = set()
    for record in registry.records():
        if record.enabled and record.failure is None:
            load_one(record, make_context(record.manifest, record.path), registry, taken_settings)


def load_one(record: ExtensionRecord, context: ExtensionContext, registry: ExtensionRegistry,
             taken_settings: set[str]) -> None:
    """Import the extension's entry module and call its `setup(context)`; on any error the record is failed and
    nothing it registered is used."""
    package = module_prefix(registry, record.name)
    try:
        module = import_entry(record.path, record.manifest.entry, package)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - an extension's import may raise anything
        _forget_modules(package)
        registry.record_failure(failure_from(record.name, "import", exc))
        return
    setup = getattr(module, "setup", None)
    try:
        if not callable(setup):
            raise ExtensionError(f"{record.manifest.entry}.py has no setup(ext) function.")
        setup(context)
        _check_settings(context, taken_settings)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - contained: the extension is switched off
        registry.record_failure(failure_from(record.name, "setup", exc))
        return
    taken_settings.update(spec.key for spec in context.registrations.settings)
    record.context = context


def _check_settings(context: ExtensionContext, taken: set[str]) -> None:
    for spec in context.registrations.settings:
        if option_spec(spec.key) is not None or spec.key in taken:
            raise ExtensionError(f"Setting key '{spec.key}' is already used; prefix it with the extension's name.")


def module_prefix(registry: ExtensionRegistry, name: str) -> str:
    """The package name the extension is imported as: unique per app, so two apps load their own copies."""
    return f"sd_extension_{id(registry):x}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def import_entry(folder: Path, entry: str, package: str) -> object:
    """Import `folder` as package `package` (its `__init__.py`, if any) and return its module `entry`, so the
    extension's modules can import each other relatively."""
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(package, init, submodule_search_locations=[str(folder)])
    else:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    if spec is None:
        raise ImportError(f"Cannot import {folder}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    if spec.loader is not None:
        spec.loader.exec_module(module)
    if not (folder / f"{entry}.py").is_file() and not (folder / entry / "__init__.py").is_file():
        raise ImportError(f"No entry module {entry}.py in {folder}.")
    return importlib.import_module(f"{package}.{entry}")


def _forget_modules(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def roots_for(user_dir: Path, builtin_dir: Path | None) -> tuple[tuple[Path, bool], ...]:
    """The folders extensions are read from: the app's built-in ones first, then the user's."""
    roots: Sequence[tuple[Path, bool]] = ((builtin_dir, True),) if builtin_dir is not None else ()
    return (*roots, (user_dir, False))
