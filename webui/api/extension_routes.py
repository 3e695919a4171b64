"""The extensions' side of the API: A1111's `GET /sdapi/v1/extensions`, our `POST /sdapi/v1/extensions/install`,
the routes extensions add (served at `/ext/<name>/...`), and each extension's arguments in a txt2img/img2img body.

Why the extension routes get the same dependency as `/sdapi`: they run the extension's code on the server, so
`--api-auth` guards them exactly as it guards the built-in API.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict

from webui.core.errors import ExtensionAccessError, ValidationError, WebUIError
from webui.core.extension_args import ExtensionArgs
from webui.services.extension_service import ExtensionService

EXTENSION_ROUTE_ROOT = "/ext"


class InstallBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    branch: str = ""


def extension_args_of(extensions: ExtensionService) -> Callable[[Any], tuple[ExtensionArgs, ...]]:
    """body -> each active extension's arguments: `alwayson_scripts["<name>"]` and its declared top-level
    fields (the body's extra fields). Names no extension has are left alone (other always-on scripts)."""

    def of(body: Any) -> tuple[ExtensionArgs, ...]:
        extras = dict(getattr(body, "model_extra", None) or {})
        return extensions.request_args(getattr(body, "alwayson_scripts", None), extras)

    return of


def _status_error(exc: WebUIError) -> HTTPException:
    status = 403 if isinstance(exc, ExtensionAccessError) else 422 if isinstance(exc, ValidationError) else 400
    return HTTPException(status_code=status, detail=str(exc))


def install_extension_list_routes(router: APIRouter, extensions: ExtensionService) -> None:
    """`/sdapi/v1/extensions` (A1111's shape) and `/sdapi/v1/extensions/install` on the sdapi router."""

    @router.get("/extensions")
    def list_extensions() -> list[dict[str, Any]]:
        return [info.a1111() for info in extensions.extensions()]

    @router.post("/extensions/install")
    async def install(body: InstallBody) -> dict[str, Any]:
        try:
            done = await asyncio.to_thread(extensions.install, body.url, body.branch)
        except WebUIError as exc:
            raise _status_error(exc) from exc
        return {"name": done.name, "path": done.path.name, "requirements": list(done.requirements),
                "message": done.message}


def install_extension_routes(app: FastAPI, extensions: ExtensionService,
                             auth: Callable[..., None] | None = None) -> None:
    """Every route the active extensions added, at `/ext/<name><path>`, behind `auth` (`--api-auth`). Must run
    before the UI is mounted at `/` (a mount there would shadow later routes)."""
    for name, registrations in extensions.registrations():
        if not registrations.routes:
            continue
        router = APIRouter(prefix=f"{EXTENSION_ROUTE_ROOT}/{name}", tags=[f"extension {name}"],
                           dependencies=[Depends(auth)] if auth else [])
        for route in registrations.routes:
            router.add_api_route(route.path, route.fn, methods=list(route.methods))
        app.include_router(router)
