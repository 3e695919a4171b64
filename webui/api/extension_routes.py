"""The extensions' side of the API: A1111's `GET /sdapi/v1/extensions`, our `POST /sdapi/v1/extensions/install`,
the routes extensions add (served at `/ext/<name>/...`), and each extension's arguments in a txt2img/img2img body.

Why the extension routes are guarded: they run the extension's code on the server, so `--api-auth` guards them as
it guards the built-in API, and routes an extension's page script fetches take the UI's login
(`webui/api/extension_auth.py`).
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import traceback
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from webui.api.extension_auth import Guard
from webui.core.errors import ExtensionAccessError, ValidationError, WebUIError
from webui.core.extension_args import ExtensionArgs
from webui.services.extension_service import ExtensionService

EXTENSION_ROUTE_ROOT = "/ext"
log = logging.getLogger("extensions")


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


def install_extension_routes(app: FastAPI, extensions: ExtensionService, api_guard: Guard | None = None,
                             page_guard: Guard | None = None) -> None:
    """Every route the active extensions added, at `/ext/<name><path>`: API routes behind `api_guard`, page
    routes behind `page_guard` (`webui/api/extension_auth.py` decides both). Must run before the UI is mounted
    at `/` (a mount there would shadow later routes)."""
    for name, registrations in extensions.registrations():
        for page in (False, True):
            routes = [route for route in registrations.routes if route.page == page]
            if not routes:
                continue
            guard = page_guard if page else api_guard
            router = APIRouter(prefix=f"{EXTENSION_ROUTE_ROOT}/{name}", tags=[f"extension {name}"],
                               dependencies=[Depends(guard)] if guard else [])
            for route in routes:
                router.add_api_route(route.path, contained(name, route.path, route.fn), methods=list(route.methods))
            app.include_router(router)


def contained(name: str, path: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its errors answered, not raised: `HTTPException` as it is, a `ValidationError` (bad input, e.g.
    the extension API's `RequestRejected`) as 422, anything else as 500 naming the extension, logged with its
    traceback. The extension stays on: a route fails for one request's input, unlike a hook, which would fail
    again for every image. `functools.wraps` keeps the signature FastAPI reads the parameters from."""

    def answer(exc: Exception) -> JSONResponse:
        if isinstance(exc, ValidationError):
            return JSONResponse({"detail": str(exc)}, status_code=422)
        log.error("Extension '%s' failed in its route %s:\n%s", name, path,
                  "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return JSONResponse({"detail": f"Extension '{name}' failed in its route {path} "
                                       f"({type(exc).__name__}: {exc}); see the server log."}, status_code=500)

    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - extension code: contained
                return answer(exc)

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - extension code: contained
            return answer(exc)

    return run
