"""The one wiring point: `build_services(settings)` then `build_app(services)`; `main` serves it.

Nothing is built, detected or loaded at import time.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from webui.api.body_limit import install_limits
from webui.api.extension_auth import UiSessions, extension_guard
from webui.api.extension_routes import install_extension_routes
from webui.api.gradio_guard import require_uploaded_files
from webui.api.security import gradio_auth, install_docs, install_security, lan_urls
from webui.core.limits import LIMITS
from webui.core.settings import Settings
from webui.services import Services, build_services

log = logging.getLogger("app")

# When asked to stop: how long open connections may take to finish, and the interrupted job to write its images.
GRACEFUL_SHUTDOWN_SECONDS = 5
JOB_STOP_SECONDS = 10
STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start (a port in use)

UiBuilder = Callable[[Services], Any]


def build_app(services: Services, ui_builder: UiBuilder | None = None) -> FastAPI:
    """The FastAPI server: the A1111 API (with --api) and the Gradio UI (unless --nowebui) in one process,
    sharing one `Services` and so one GPU executor, behind the security middlewares (webui/api/security.py).

    `ui_builder` (services -> gr.Blocks) defaults to the real UI; tests of the server's wiring may pass a small one.
    """
    settings = services.settings
    app = FastAPI(title="Stable Diffusion Studio API", docs_url=None, redoc_url=None, openapi_url=None)
    install_docs(app, settings.security.api_auth)  # before the UI is mounted at `/`
    if settings.api:
        from webui.api.routes import install_api

        install_api(app, services)
    security = settings.security  # extension routes: mounted before the UI; see webui/api/extension_auth.py
    sessions = None if settings.nowebui else UiSessions()
    install_extension_routes(app, services.extensions,
                             extension_guard(False, security.api_auth, security.gradio_auth, sessions),
                             extension_guard(True, security.api_auth, security.gradio_auth, sessions))
    file_roots: list[str] = []
    upload_dir: str | None = None
    if settings.nowebui:
        _api_home(app)
    else:
        app, upload_dir = _mount_ui(app, services, ui_builder)
        file_roots.append(upload_dir)
        if sessions is not None:
            sessions.bind(app)
    install_security(app, settings, file_roots, upload_dir)
    install_limits(app)  # outermost: no middleware reads a body before its size is capped
    return app


def _api_home(app: FastAPI) -> None:
    """With --nowebui, `/` says where the API is instead of a bare 404."""

    @app.get("/", include_in_schema=False)
    def home() -> dict[str, str]:
        return {"name": "Stable Diffusion Studio API", "docs": "/docs", "api": "/sdapi/v1"}


def _mount_ui(app: FastAPI, services: Services, ui_builder: UiBuilder | None) -> tuple[FastAPI, str]:
    """Mount the Gradio UI at `/`; returns the app and Gradio's upload folder (which its file route serves)."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    from webui.ui.app_ui import CSS, HEAD, build_ui
    from webui.ui.extension_parts import extension_css, extension_head

    settings = services.settings
    blocks = (ui_builder or build_ui)(services)
    blocks.queue(default_concurrency_limit=None)
    credentials = settings.security.gradio_auth
    app = gr.mount_gradio_app(
        app, blocks, path="/",
        allowed_paths=[str(settings.paths.outputs_dir), *(str(p) for p in settings.security.allowed_paths)],
        max_file_size=LIMITS.max_upload_bytes,
        auth=gradio_auth(credentials) if credentials else None,
        theme=gr.themes.Default(), css=CSS + extension_css(services.extensions),
        head=HEAD + extension_head(services.extensions), server_name=settings.host, server_port=settings.port,
        footer_links=["api", "gradio"] if settings.api else ["gradio"],
        js=f"() => document.body.classList.toggle('dark', {str(settings.theme == 'dark').lower()})"
        if settings.theme else None,
    )
    require_uploaded_files(blocks)  # as `launch()` would: event inputs may only name uploaded files
    return app, get_upload_folder()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's arguments: bind address, port, TLS files and keep-alive from the launch flags."""
    security = settings.security
    options: dict[str, Any] = {"host": settings.host, "port": settings.port, "log_level": "warning",
                               "timeout_keep_alive": security.timeout_keep_alive,
                               "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS}
    if security.tls:
        options.update(ssl_keyfile=str(security.tls_keyfile), ssl_certfile=str(security.tls_certfile))
    return options


def exposure_warnings(settings: Settings) -> list[str]:
    """What is reachable from other machines without a password (empty on a loopback bind)."""
    if settings.is_loopback:
        return []
    warnings = []
    if not settings.nowebui and not settings.security.gradio_auth:
        warnings.append(f"The UI is reachable from the network (bound to {settings.host}) without a password: "
                        "anyone on the network can use it. Add --gradio-auth user:password.")
    if settings.api and not settings.security.api_auth:
        warnings.append(f"The API is reachable from the network (bound to {settings.host}) without a password. "
                        "Add --api-auth user:password.")
    return warnings


def _announce(settings: Settings) -> None:
    for flag in settings.accepted_only_flags:
        log.info("Flag %s is accepted for A1111 compatibility; it has no effect in this version yet.", flag)
    for flag in settings.unknown_flags:
        log.warning("Unknown command-line argument %s ignored.", flag)
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"Running on local URL:  {settings.scheme}://{shown}:{settings.port}", flush=True)  # noqa: T201
    if not settings.is_loopback:
        for url in lan_urls(settings):
            print(f"Running on network URL: {url}", flush=True)  # noqa: T201
    for warning in exposure_warnings(settings):
        log.warning(warning)


class StoppingServer(uvicorn.Server):
    """uvicorn's server, stopping the GPU work first when asked to stop (SIGTERM, Ctrl+C).

    Why: uvicorn waits for open requests before it exits, and a generation request stays open until its job ends
    (minutes for a long one), as does Gradio's heartbeat stream for as long as a browser tab is open. So stopping
    interrupts the running job (it keeps and saves what it finished) and cancels queued ones, ends Gradio's
    streams, bounds the wait for anything else (`timeout_graceful_shutdown`), then waits for the worker to finish
    writing before the process exits."""

    def __init__(self, config: uvicorn.Config, executor: Any):
        super().__init__(config)
        self.executor = executor

    async def shutdown(self, sockets: Any = None) -> None:
        self.executor.close()
        end_gradio_streams(self.config.app)
        await super().shutdown(sockets)
        await asyncio.to_thread(self.executor.shutdown, JOB_STOP_SECONDS)


def end_gradio_streams(app: Any) -> None:
    """Set the stop event of every mounted Gradio app: its heartbeat streams end on it (as after Gradio's own
    `close()`, which a mounted app does not get)."""
    for route in getattr(app, "routes", ()):
        stop_event = getattr(getattr(route, "app", None), "stop_event", None)
        if stop_event is not None:
            stop_event.set()


def main(settings: Settings) -> None:
    services = build_services(settings)
    services.models.load_startup_model()
    # Attached before the UI is built (the Extensions tab says whether it restarts); `server` exists when called.
    services.restart.attach(lambda: setattr(server, "should_exit", True))
    app = build_app(services)
    _announce(settings)
    server = StoppingServer(uvicorn.Config(app, **server_options(settings)), services.runtime.executor)
    server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
    if services.restart.requested.is_set():
        restart_process(services)


def restart_process(services: Services) -> None:
    """Start this program again with the same command line ("Apply and restart UI"): the server has stopped and
    the GPU worker has finished; the training worker's watchers stop (a restart is refused while one trains)."""
    services.runtime.shutdown(terminate_training=False)
    logging.shutdown()
    args = [sys.executable, *sys.orig_argv[1:]]
    os.execv(sys.executable, args)
