"""Extensions for the UI and the API: loading them at start-up, listing them (A1111's /sdapi/v1/extensions),
installing from a git URL, requirements after confirmation, enabling/disabling, updates, the Available index,
and what the active extensions registered (tabs, scripts, routes, settings, controls, request fields).

Why every change goes through `_allow_changes`: installing or enabling an extension runs its code on the server,
so it is refused when the server is reachable from the network unless `--enable-insecure-extension-access`
(`Settings.extension_access_refused`), the same rule for the tab and the API.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webui.core.errors import ExtensionAccessError, ValidationError, WebUIError
from webui.core.extension_args import ExtensionArgs
from webui.core.options import Options
from webui.core.settings import Settings
from webui.extensions import git_ops
from webui.extensions.api import ExtensionContext, ExtensionPaths, Manifest, Registrations
from webui.extensions.index import IndexResult, read_index
from webui.extensions.isolation import failure_from
from webui.extensions.loader import LoadPlan, discover, load_all, roots_for
from webui.extensions.manifest import read_manifest
from webui.extensions.registry import ExtensionRecord, ExtensionRegistry
from webui.extensions.requirements import checked_requirements, pip_install
from webui.services.server_restart import ServerRestart

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "extensions-builtin"
DISABLED_KEY = "disabled_extensions"  # A1111's config.json key
INDEX_URL_KEY = "extensions_index_url"
DEFAULT_INDEX_URL = "https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json"
RESTART_NOTE = "Saved to config.json; takes effect when the server is restarted."


@dataclass(frozen=True)
class ExtensionInfo:
    """One extension as the Extensions tab and the API show it."""

    name: str
    description: str
    version: str
    path: Path
    builtin: bool
    enabled: bool
    status: str
    requirements: tuple[str, ...]
    repo: git_ops.RepoInfo
    error: str = ""  # the traceback (or message) that switched it off
    url: str = ""  # the manifest's URL (shown when the folder is not a git checkout)

    @property
    def source(self) -> str:
        return self.repo.remote or self.url

    def a1111(self) -> dict[str, Any]:
        """A1111's /sdapi/v1/extensions entry."""
        return {"name": self.name, "remote": self.source, "branch": self.repo.branch,
                "commit_hash": self.repo.commit_hash, "version": self.version or self.repo.commit_hash[:8],
                "commit_date": self.repo.commit_date, "enabled": self.enabled}


@dataclass(frozen=True)
class Installed:
    """The result of an install: where it went and the requirements the user may now confirm."""

    name: str
    path: Path
    requirements: tuple[str, ...]
    message: str


class ExtensionService:
    """The extensions of one app (its registry is shared with the generation service, which runs the hooks)."""

    def __init__(self, settings: Settings, options: Options, registry: ExtensionRegistry,
                 restart: ServerRestart | None = None):
        self._settings = settings
        self._options = options
        self._registry = registry
        self._restart = restart
        self._services: Mapping[str, Any] = {}

    # --- loading ---------------------------------------------------------------------------------------------
    def load_plan(self) -> LoadPlan:
        flags = self._settings.extensions
        builtin = flags.builtin_dir if flags.builtin_dir is not None else BUILTIN_DIR
        return LoadPlan(roots_for(self._settings.paths.extensions_dir, builtin), self._disabled(),
                        flags.disable_all, flags.disable_extra)

    def load(self, services: Mapping[str, Any]) -> None:
        """Discover and set up the extensions (once, from `build_services`); `services` are those an extension may
        ask for by name."""
        self._services = services
        load_all(self.load_plan(), self._registry, lambda manifest, folder: self._context(manifest, folder, services))

    def _context(self, manifest: Manifest, folder: Path, services: Mapping[str, Any]) -> ExtensionContext:
        paths = self._settings.paths
        return ExtensionContext(manifest, ExtensionPaths(
            extension_dir=folder, data_dir=paths.data_dir, outputs_dir=paths.outputs_dir,
            wildcards_dir=paths.data_dir / "wildcards", models_dir=paths.models_dir,
            lora_dirs=(paths.lora_dir, paths.lycoris_dir), embeddings_dir=paths.embeddings_dir),
            services, self._options.get)

    def _disabled(self) -> frozenset[str]:
        value = self._options.get(DISABLED_KEY) or []
        return frozenset(str(name) for name in value) if isinstance(value, list) else frozenset()

    # --- what the active extensions registered --------------------------------------------------------------
    def registrations(self) -> Iterator[tuple[str, Registrations]]:
        return self._registry.registrations()

    def record_failure(self, name: str, stage: str, exc: BaseException) -> str:
        """Switch extension `name` off for the session because building its `stage` (a tab, its controls, a route)
        raised; returns the one-line message to show in place of what failed."""
        failure = failure_from(name, stage, exc)
        self._registry.record_failure(failure)
        return failure.warning().replace("this generation continued", "the app continues")

    def script_table(self, img2img: bool | None = None) -> dict[str, tuple[str, str]]:
        """The active extensions' scripts by lower-case name -> (extension, script name); `img2img` True/False
        keeps those offered on that tab."""
        return {script.name.lower(): (name, script.name) for name, regs in self.registrations()
                for script in regs.scripts if img2img is None or (script.img2img if img2img else script.txt2img)}

    def script_services(self, uses: tuple[str, ...]) -> dict[str, Any]:
        """The services a script asked for (`ScriptSpec.uses`), by name."""
        return {name: self._services[name] for name in uses}

    def request_args(self, alwayson: Mapping[str, Any] | None, extras: Mapping[str, Any]) -> tuple[ExtensionArgs, ...]:
        """Each active extension's arguments in an API body: `alwayson_scripts["<name>"]` (`{"args": [...]}`,
        `{"args": {...}}`, a list or a dict; names match case-insensitively and with spaces for dashes, as A1111
        script titles are written: "dynamic prompts" is "dynamic-prompts"; unknown names are left to others)
        and its declared top-level fields in `extras`."""
        given = {_alwayson_key(str(key)): value for key, value in (alwayson or {}).items()}
        found = []
        for name, regs in self.registrations():
            value = given.get(_alwayson_key(name))
            fields = {key: extras[key] for key in regs.api_fields if key in extras}
            if value is None and not fields:
                continue
            found.append(_args_from(name, value, fields))
        return tuple(found)

    # --- listing ---------------------------------------------------------------------------------------------
    def extensions(self) -> list[ExtensionInfo]:
        """Every extension folder: those loaded at start-up (with their state) and those installed since (listed
        as "installed, loads on restart")."""
        records = self._registry.records()
        known = {record.name for record in records}
        fresh = ExtensionRegistry()
        discover(self.load_plan(), fresh)
        plan = self.load_plan()
        infos = [self._info(record, plan) for record in records]
        for record in fresh.records():
            if record.name not in known:
                infos.append(self._info(record, plan, status="installed; loads on restart"))
        return infos

    def _info(self, record: ExtensionRecord, plan: LoadPlan, status: str = "") -> ExtensionInfo:
        """`enabled` is the saved choice (and the flags), which may differ from this session until a restart."""
        manifest, failure = record.manifest, record.failure
        return ExtensionInfo(record.name, manifest.description, manifest.version, record.path, record.builtin,
                             plan.enabled(record.name, record.builtin), status or record.status,
                             manifest.requirements, git_ops.repo_info(record.path),
                             (failure.traceback or failure.message) if failure is not None else "", manifest.url)

    def access_refused(self) -> str:
        return self._settings.extension_access_refused

    def _allow_changes(self) -> None:
        reason = self.access_refused()
        if reason:
            raise ExtensionAccessError(reason)

    # --- changes (refused on an exposed server) -----------------------------------------------------------
    def set_enabled(self, enabled: list[str], shown: list[str] | None = None) -> str:
        """Save which extensions are on (config.json's `disabled_extensions` lists the others). `shown` are the
        names the user chose among (default: all); the others keep their saved state (an extension installed
        after the page was built is not switched off by it)."""
        self._allow_changes()
        names = {info.name for info in self.extensions()}
        unknown = sorted(set(enabled) - names)
        if unknown:
            raise ValidationError(f"No extension named {', '.join(unknown)}.")
        among = names if shown is None else set(shown) & names
        disabled = (set(self._disabled()) - among) | (among - set(enabled))
        self._options.update({DISABLED_KEY: sorted(disabled)})
        return RESTART_NOTE

    @property
    def can_restart(self) -> bool:
        """Whether "Apply and restart UI" restarts this server (started by launch.py) or only saves."""
        return self._restart is not None and self._restart.available

    def apply_and_restart(self, enabled: list[str], shown: list[str] | None = None) -> str:
        """"Apply and restart UI": save the choice (`set_enabled`, refused on an exposed server), then restart the
        server so it takes effect (a new process, when this server can restart itself)."""
        note = self.set_enabled(enabled, shown)
        return self._restart.request() if self._restart is not None and self.can_restart else note

    def install(self, url: str, branch: str = "") -> Installed:
        """`git clone` `url` into `extensions/`; the clone must hold a valid extension.toml (else it is removed).
        Its requirements are not installed here: the caller shows them and calls `install_requirements`."""
        self._allow_changes()
        name = git_ops.folder_name_for(url)
        target = self._settings.paths.extensions_dir / name
        if target.exists():
            raise ValidationError(f"An extension folder named '{name}' already exists ({target}).")
        target.parent.mkdir(parents=True, exist_ok=True)
        git_ops.clone(url, target, branch)
        try:
            manifest = read_manifest(target)
            checked_requirements(manifest.requirements)
        except WebUIError:
            _remove(target)
            raise
        needs = f" It needs {', '.join(manifest.requirements)}: install them when asked." \
            if manifest.requirements else ""
        return Installed(manifest.name, target, manifest.requirements,
                         f"Installed '{manifest.name}' into {target.name}.{needs} It loads when the server is "
                         "restarted.")

    def install_requirements(self, name: str) -> str:
        """pip-install the requirements `name` declares (after the user confirmed the list)."""
        self._allow_changes()
        info = self._find(name)
        return pip_install(info.requirements)

    def check_updates(self) -> dict[str, str]:
        """For each git checkout: "up to date", "N commits behind" or why it could not tell (fetching is a change
        of the folder, so it is refused on an exposed server too)."""
        self._allow_changes()
        report = {}
        for info in self.extensions():
            if not info.repo.remote:
                report[info.name] = "not a git checkout"
                continue
            try:
                behind = git_ops.behind_count(info.path)
                report[info.name] = f"{behind} commits behind" if behind else "up to date"
            except WebUIError as exc:
                report[info.name] = str(exc)
        return report

    def update(self, name: str) -> str:
        self._allow_changes()
        info = self._find(name)
        commit = git_ops.pull(info.path)
        return f"Updated '{name}' to {commit[:8]}. {RESTART_NOTE}"

    def index_url(self) -> str:
        return str(self._options.get(INDEX_URL_KEY) or DEFAULT_INDEX_URL)

    def available(self, url: str | None = None) -> IndexResult:
        """The index at the saved URL, or at `url` (then saved as the setting). Another URL is a change: the server
        would fetch what a visitor names (a file:// path too), so an exposed server refuses it."""
        if url and url.strip() and url.strip() != self.index_url():
            self._allow_changes()
            self._options.update({INDEX_URL_KEY: url.strip()})
        return read_index(self.index_url())

    def _find(self, name: str) -> ExtensionInfo:
        for info in self.extensions():
            if info.name == name:
                return info
        raise ValidationError(f"No extension named '{name}'.")


def _alwayson_key(name: str) -> str:
    """An `alwayson_scripts` key as compared: case, spaces, dashes and underscores do not matter."""
    return " ".join(name.lower().replace("-", " ").replace("_", " ").split())


def _args_from(name: str, value: Any, fields: dict[str, Any]) -> ExtensionArgs:
    """One extension's `ExtensionArgs` from its alwayson_scripts value and its top-level fields."""
    if isinstance(value, Mapping) and "args" in value:
        value = value["args"]
    args: tuple[Any, ...] = ()
    if isinstance(value, list | tuple):
        args = tuple(value)
    elif isinstance(value, Mapping):
        fields = {**{str(k): v for k, v in value.items()}, **fields}
    elif value is not None:
        args = (value,)
    return ExtensionArgs(name=name, args=args, fields=tuple(fields.items()))


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
