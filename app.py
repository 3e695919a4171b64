"""The one wiring point: `build_services(settings)` then `build_app(services)`; `main` serves it.

Nothing is built, detected or loaded at import time.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI

from webui.core.settings import Settings
from webui.services import Services, build_services

log = logging.getLogger("app")


def build_app(services: Services) -> FastAPI:
    """The FastAPI server: the A1111 API (with --api) and the Gradio UI (unless --nowebui) in one process,
    sharing one `Services` and so one GPU executor."""
    settings = services.settings
    app = FastAPI(title="Stable Diffusion Studio API", docs_url="/docs", openapi_url="/openapi.json")
    if settings.api:
        from webui.api.routes import install_api

        install_api(app, services)
    if not settings.nowebui:
        import gradio as gr

        from webui.ui.app_ui import CSS, build_ui

        blocks = build_ui(services)
        blocks.queue(default_concurrency_limit=None)
        app = gr.mount_gradio_app(
            app, blocks, path="/", allowed_paths=[str(settings.paths.outputs_dir)],
            theme=gr.themes.Default(), css=CSS, server_name=settings.host, server_port=settings.port,
            footer_links=["api", "gradio"] if settings.api else ["gradio"],
            js=f"() => document.body.classList.toggle('dark', {str(settings.theme == 'dark').lower()})"
            if settings.theme else None,
        )
    return app


def _announce(settings: Settings) -> None:
    for flag in settings.accepted_only_flags:
        log.info("Flag %s is accepted for A1111 compatibility; it has no effect in this version yet.", flag)
    for flag in settings.unknown_flags:
        log.warning("Unknown command-line argument %s ignored.", flag)
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"Running on local URL:  http://{shown}:{settings.port}", flush=True)  # noqa: T201
    if not settings.is_loopback:
        log.warning("The server is reachable from the network (bound to %s).", settings.host)


def main(settings: Settings) -> None:
    import uvicorn

    services = build_services(settings)
    services.load_startup_model()
    app = build_app(services)
    _announce(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
