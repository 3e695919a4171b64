"""The extension API: the one module an extension imports (`from webui.extensions.api import ...`).

An extension is a folder `extensions/<name>/` (or `extensions-builtin/<name>/`) holding `extension.toml` (its
`Manifest`) and a Python entry module (`main.py` unless the manifest names another) that defines
`setup(ext: ExtensionContext) -> None`. `setup` registers everything the extension adds through `ext`; nothing is
registered by importing. Why one module and registration calls: the rest of `webui` may change freely, this
surface may only grow (`API_VERSION` says which version an extension was written against), and a failing
extension is switched off cleanly because everything it added is known (see docs/extensions.md).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from webui.core.errors import ValidationError
from webui.core.extension_args import ExtensionArgs

API_VERSION = 1
MANIFEST_FILE = "extension.toml"
DEFAULT_ENTRY = "main"
HOOK_NAMES = ("before_generation", "on_step", "after_image", "infotext_fields")
SERVICE_NAMES = ("models", "generation", "queue", "networks", "styles", "upscale", "scripts", "options", "info")
TAB_TARGETS = ("txt2img", "img2img", "extras")

RequestArgs = ExtensionArgs  # what `ExtensionContext.request_args` returns: `.args`, `.fields`, `.given`


class ExtensionError(Exception):
    """A registration an extension made is wrong (a duplicate name, an unknown service, a bad route path). Raised
    from `setup`; the loader disables the extension and shows the message."""


class RequestRejected(ValidationError):
    """Raise from a `before_generation` hook when the user's input is wrong, not the extension (e.g. a prompt
    template that does not parse): the request fails with this message like any invalid field (the UI shows it,
    the API answers 422) and the extension stays on."""


@dataclass(frozen=True)
class Manifest:
    """`extension.toml`'s `[extension]` table. `before`/`after` name other extensions whose hooks run after/before
    this one's; `requirements` are pip requirement strings installed only when the user confirms."""

    name: str
    version: str = "0.0.0"
    description: str = ""
    requirements: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    entry: str = DEFAULT_ENTRY
    url: str = ""
    api_version: int = API_VERSION


@dataclass(frozen=True)
class ExtensionPaths:
    """Folders an extension may read and write: its own folder, the data folder, the outputs (the image browser),
    the wildcards folder (`<data>/wildcards`), model folders, embeddings."""

    extension_dir: Path
    data_dir: Path
    outputs_dir: Path
    wildcards_dir: Path
    models_dir: Path
    lora_dirs: tuple[Path, ...]
    embeddings_dir: Path


@dataclass(frozen=True)
class StepInfo:
    """One finished denoising step: `step` counts from 1 to `total_steps` (a hires pass counts again from 1 with
    `hires=True`); `request` is the request being run."""

    step: int
    total_steps: int
    request: Any
    hires: bool = False


@dataclass(frozen=True)
class ImageInfo:
    """What `after_image` hooks know about one image, before it is written: its index in the job (from 0), its
    seeds and prompts, and the request it came from."""

    index: int
    seed: int
    subseed: int
    prompt: str
    negative_prompt: str
    request: Any


@dataclass(frozen=True)
class SettingSpec:
    """A setting an extension adds: shown in Settings under `section`, saved in config.json under `key`."""

    key: str
    default: Any
    label: str
    section: str = "Extensions"
    choices: tuple[Any, ...] | None = None
    extension: str = ""


@dataclass(frozen=True)
class ScriptSpec:
    """A script for the Script dropdown: `controls(is_img2img)` builds its Gradio components (in order);
    `run(request, services, *values)` runs it and returns a `GenerationResult` (what
    `services["generation"].txt2img(request)` returns). `services` holds the services named in `uses`."""

    name: str
    controls: Callable[[bool], Sequence[Any]]
    run: Callable[..., Any]
    uses: tuple[str, ...] = ("generation",)
    txt2img: bool = True
    img2img: bool = True
    extension: str = ""


@dataclass(frozen=True)
class TabSpec:
    title: str
    build: Callable[[TabUI], Any]
    extension: str = ""


@dataclass(frozen=True)
class RouteSpec:
    """`fn` served at `/ext/<extension name>/<path>` (a FastAPI endpoint function)."""

    path: str
    fn: Callable[..., Any]
    methods: tuple[str, ...] = ("GET",)
    extension: str = ""
    page: bool = False  # called by the extension's page script: the UI's login guards it (see add_api_route)


class TabUI(Protocol):
    """What a tab's build function gets from the UI, besides building Gradio components itself."""

    def send_to(self, button: Any, target: str, *, infotext: Any, image: Any = None,
                api_name: str | None = None) -> None:
        """Wire `button` (a gr.Button): on click, fill tab `target` ("txt2img", "img2img" or "extras") from the
        infotext text in component `infotext` (and, for img2img/extras, the image in component `image`, a
        gr.Image or a textbox holding a file path) and switch to that tab, exactly as PNG Info's buttons do."""
        ...


@dataclass
class Registrations:
    """Everything one extension registered in `setup` (read by the registry and the UI/API builders)."""

    hooks: dict[str, list[Callable[..., Any]]] = field(default_factory=lambda: {name: [] for name in HOOK_NAMES})
    tabs: list[TabSpec] = field(default_factory=list)
    scripts: list[ScriptSpec] = field(default_factory=list)
    generation_controls: list[tuple[str, Callable[[str], Sequence[Any]]]] = field(default_factory=list)
    api_fields: list[str] = field(default_factory=list)
    settings: list[SettingSpec] = field(default_factory=list)
    routes: list[RouteSpec] = field(default_factory=list)
    css: list[str] = field(default_factory=list)
    js: list[str] = field(default_factory=list)


class ExtensionContext:
    """Passed to an extension's `setup(ext)`. Every `add_*`/hook call records a registration; the app builds the
    tabs, scripts, routes and settings from them and calls the hooks at the points named below. A hook that
    raises disables the whole extension for the session (the generation it hit completes without it and says so
    in its warnings)."""

    def __init__(self, manifest: Manifest, paths: ExtensionPaths, services: Mapping[str, Any],
                 read_setting: Callable[[str], Any]):
        self.manifest = manifest
        self.paths = paths
        self.log = logging.getLogger(f"extensions.{manifest.name}")
        self.registrations = Registrations()
        self._services = services
        self._read_setting = read_setting

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def route_prefix(self) -> str:
        """Where `add_api_route` paths are served: `/ext/<name>`."""
        return f"/ext/{self.manifest.name}"

    # --- services and values -------------------------------------------------------------------------------
    def service(self, name: str) -> Any:
        """A service by name (one of `SERVICE_NAMES`), e.g. `ext.service("networks").lora_names()`."""
        if name not in SERVICE_NAMES:
            raise ExtensionError(f"Unknown service '{name}' (known: {', '.join(SERVICE_NAMES)}).")
        return self._services[name]

    def setting(self, key: str) -> Any:
        """The current value of a setting this extension added (config.json, or its default)."""
        for spec in self.registrations.settings:
            if spec.key == key:
                value = self._read_setting(key)
                return spec.default if value is None else value
        raise ExtensionError(f"Extension '{self.name}' has no setting '{key}'.")

    def request_args(self, request: Any) -> RequestArgs:
        """This extension's arguments in `request` (from its generation controls, `alwayson_scripts["<name>"]`
        in an API body, or its declared top-level API fields); `.given` is False when there were none."""
        for item in getattr(request, "extension_args", ()):
            if item.name == self.name:
                return item
        return RequestArgs(name=self.name, given=False)

    def with_request_args(self, request: Any, args: RequestArgs | None) -> Any:
        """`request` with this extension's arguments replaced (None removes them), e.g. in a script's cells."""
        kept = tuple(item for item in getattr(request, "extension_args", ()) if item.name != self.name)
        return dataclasses.replace(request, extension_args=kept + ((args,) if args is not None else ()))

    # --- hooks ----------------------------------------------------------------------------------------------
    def before_generation(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """`fn(request) -> request | list[request]`, called on every txt2img/img2img request (UI, API, script
        cells) before it is resolved, in extension order; `-1` seeds are already drawn. Return
        `dataclasses.replace(request, ...)`. A list splits the job: each request is generated in turn in the same
        job and the images are returned together (how dynamic prompts gives each image its own prompt)."""
        return self._hook("before_generation", fn)

    def on_step(self, fn: Callable[[StepInfo], None]) -> Callable[[StepInfo], None]:
        """`fn(StepInfo)`, called after each denoising step on the generation thread; keep it fast."""
        return self._hook("on_step", fn)

    def after_image(self, fn: Callable[[Any, ImageInfo], Any]) -> Callable[[Any, ImageInfo], Any]:
        """`fn(image, ImageInfo) -> image`: each generated PIL image before it is written and returned."""
        return self._hook("after_image", fn)

    def infotext_fields(self, fn: Callable[[Any, int], Mapping[str, Any]]) -> Callable[[Any, int], Any]:
        """`fn(request, index) -> {"Field": value}`: extra `Field: value` pairs in image `index`'s infotext."""
        return self._hook("infotext_fields", fn)

    def _hook(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise ExtensionError(f"{kind} needs a function (got {type(fn).__name__}).")
        self.registrations.hooks[kind].append(fn)
        return fn  # usable as a decorator

    # --- UI, API, settings, assets --------------------------------------------------------------------------
    def add_tab(self, title: str, build_fn: Callable[[TabUI], Any]) -> None:
        """A top-level tab: `build_fn(ui)` is called inside `gr.Tab(title)` and builds its components and events
        (give each event an `api_name` starting with the extension's name)."""
        self.registrations.tabs.append(TabSpec(title, build_fn, self.name))

    def add_script(self, name: str, controls_builder: Callable[[bool], Sequence[Any]], run_fn: Callable[..., Any],
                   *, uses: Sequence[str] = ("generation",), txt2img: bool = True, img2img: bool = True) -> None:
        """A script in the Script dropdown (and `script_name` in the API, whose `script_args` are its values)."""
        unknown = [item for item in uses if item not in SERVICE_NAMES]
        if unknown:
            raise ExtensionError(f"Script '{name}' uses unknown services: {', '.join(unknown)}.")
        self.registrations.scripts.append(ScriptSpec(name, controls_builder, run_fn, tuple(uses), txt2img,
                                                     img2img, self.name))

    def add_generation_controls(self, build_fn: Callable[[str], Sequence[Any]]) -> None:
        """Always-visible controls under txt2img's and img2img's generation panel, in an accordion named after the
        extension: `build_fn(tab)` ("txt2img" or "img2img") returns its components; their values reach the hooks
        as `ext.request_args(request).args`, in order (the API sends the same list as
        `alwayson_scripts["<name>"]["args"]`)."""
        self.registrations.generation_controls.append((self.name, build_fn))

    def add_api_request_fields(self, *names: str) -> None:
        """Top-level fields of the txt2img/img2img API bodies routed to this extension: they arrive in
        `ext.request_args(request).fields` (as do the keys of `alwayson_scripts["<name>"]` given as a dict)."""
        self.registrations.api_fields.extend(names)

    def add_setting(self, key: str, default: Any, label: str, section: str = "Extensions",
                    choices: Sequence[Any] | None = None) -> None:
        """A setting shown in Settings (`section`) and saved in config.json; read it with `ext.setting(key)`."""
        self.registrations.settings.append(SettingSpec(key, default, label, section,
                                                       tuple(choices) if choices is not None else None, self.name))

    def add_api_route(self, path: str, fn: Callable[..., Any], methods: Sequence[str] = ("GET",),
                      page: bool = False) -> None:
        """`fn` (a FastAPI endpoint function) at `/ext/<name>/<path>`, behind the same auth as `/sdapi`
        (`--api-auth`). `page=True` marks a route your page script (`add_js`) fetches: a browser has no API
        credentials, so it is guarded by the UI's login instead (`--gradio-auth`; open when the UI is open).
        An exception in `fn` answers 500 with the extension's name and the error, and is logged."""
        if not path.startswith("/") or ".." in path:
            raise ExtensionError(f"Route paths start with '/' and have no '..' (got {path!r}).")
        self.registrations.routes.append(RouteSpec(path, fn, tuple(m.upper() for m in methods), self.name,
                                                   page))

    def add_css(self, css: str) -> None:
        """CSS text added to the page (read a file yourself: `(ext.paths.extension_dir / "style.css").read_text()`)."""
        self.registrations.css.append(css)

    def add_js(self, js: str) -> None:
        """JavaScript added to the page's <head> in a <script> element, after the page's own scripts."""
        self.registrations.js.append(js)


__all__ = [
    "API_VERSION", "DEFAULT_ENTRY", "HOOK_NAMES", "MANIFEST_FILE", "SERVICE_NAMES", "TAB_TARGETS",
    "ExtensionContext", "ExtensionError", "ExtensionPaths", "ImageInfo", "Manifest", "Registrations",
    "RequestArgs", "RequestRejected", "RouteSpec", "ScriptSpec", "SettingSpec", "StepInfo", "TabSpec", "TabUI",
]
