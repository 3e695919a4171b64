"""Who may call the routes extensions add (`/ext/<name>/...`).

Two kinds of route, two audiences:
- API routes (the default) are for programs: `--api-auth` credentials when set. With only `--gradio-auth` set, a
  logged-in UI session is needed instead, so a server whose owner put a login on it never runs extension code for
  an anonymous visitor.
- Page routes (`add_api_route(..., page=True)`) are what an extension's own page script fetches (tag
  autocomplete's suggestions). A browser has no API credentials, so they take the UI's login: a logged-in UI
  session with `--gradio-auth` (API credentials work too), and open when the UI itself is open to whoever reaches
  the server. Without a UI (`--nowebui`) they are API routes.

A refused page route answers 401 without `WWW-Authenticate`, so a page script's fetch never pops the browser's
password dialog.

Why the login cookie is read here: Gradio checks its session only on its own routes; the extension routes are
mounted beside it. `UiSessions` is bound to the mounted Gradio app and reads the same cookie, in the same token
table, that Gradio's `/user` route reads.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request

from webui.api.security import basic_auth
from webui.core.settings import Credential

Guard = Callable[[Request], None]


class UiSessions:
    """The mounted Gradio app's login sessions (none until `bind`)."""

    def __init__(self) -> None:
        self._gradio: Any = None

    def bind(self, app: Any) -> None:
        """Find the Gradio app among `app`'s mounts (after `gr.mount_gradio_app`)."""
        for route in getattr(app, "routes", ()):
            mounted = getattr(route, "app", None)
            if hasattr(mounted, "tokens") and hasattr(mounted, "cookie_id"):
                self._gradio = mounted
                return

    def user(self, request: Request) -> str | None:
        """The logged-in user of the request's UI session, if any."""
        gradio = self._gradio
        if gradio is None:
            return None
        token = (request.cookies.get(f"access-token-{gradio.cookie_id}")
                 or request.cookies.get(f"access-token-unsecure-{gradio.cookie_id}"))
        return gradio.tokens.get(token) if token else None


def extension_guard(page: bool, api_auth: tuple[Credential, ...], gradio_auth: tuple[Credential, ...],
                    sessions: UiSessions | None) -> Guard | None:
    """The dependency for one kind of extension route; None when the route is open. `sessions` is None when
    there is no UI (`--nowebui`)."""
    ui_login = bool(gradio_auth) and sessions is not None
    if page and sessions is not None and not gradio_auth:
        return None  # the UI is open to whoever reaches the server, and so is what its page fetches
    if not api_auth and not ui_login:
        return None
    credentials = basic_auth(api_auth) if api_auth else None

    def require(request: Request) -> None:
        if ui_login and sessions is not None and sessions.user(request) is not None:
            return
        if credentials is not None and (request.headers.get("authorization") or not page):
            credentials(request)  # 401 with the Basic challenge when wrong
            return
        raise HTTPException(status_code=401, detail="Log in to the UI first." if page or not api_auth else
                            "Incorrect or missing credentials (--api-auth).")

    return require
