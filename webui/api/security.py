"""Safe network exposure: Host-header checks, security headers, a file-route guard and HTTP Basic auth.

Why pure ASGI middlewares (not `BaseHTTPMiddleware`): Gradio streams (server-sent events, file ranges), and a
pure middleware only looks at the request line and headers and the response start, so streaming is untouched.

- `HostCheckMiddleware`: a browser on the user's machine may be tricked into sending requests to the UI from a
  page on another site (DNS rebinding: evil.example resolving to 127.0.0.1). Such requests carry the attacker's
  name in `Host`; only the names this server is really reached by are accepted.
- `SecurityHeadersMiddleware`: nosniff, same-origin framing and referrer policy on every response.
- `FileAccessGuard`: Gradio's `/gradio_api/file=<path>` serves any file it considers allowed (its temp folder,
  every `allowed_paths` entry, static paths set by any code in the process). We narrow that to the outputs
  folder(s), Gradio's own upload folder and *image* files in the model folders (previews next to models), with
  symlinks resolved, and refuse remote URLs (the route would fetch them server-side).
  File routes answer inline only for raster images: anything else (HTML, SVG, text from a `--gradio-allowed-path`
  folder) comes as a download, so it cannot run script on the app's origin.
- `BasicAuth`: `--api-auth` for `/sdapi/*` and the API docs, comparing in constant time; repeated failures (and
  failed UI logins) from one address are slowed down (webui/api/login_throttle.py).
- `UploadedFilesOnly` (webui/api/gradio_guard.py): Gradio events may name only files uploaded to this server.
- CORS: always a Starlette `CORSMiddleware`, allowing only the `--cors-allow-origins*` origins (none by default).
  Its presence also matters: Gradio adds its own permissive CORS handling to a mounted app (it echoes any origin,
  with credentials, when the `Host` is not a loopback name) unless the parent app has a `CORSMiddleware`.
- Unhandled errors: Starlette answers them outside every middleware, so the 500 answer is built here with the
  security headers.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webui.api.gradio_guard import UploadedFilesOnly
from webui.api.login_throttle import LoginThrottleMiddleware
from webui.core.settings import Credential, Settings

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
)
PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# What a file route may answer inline: raster images only (no SVG: it can carry script).
INLINE_FILE_TYPES = frozenset({b"image/png", b"image/jpeg", b"image/gif", b"image/webp", b"image/avif",
                               b"image/bmp"})
# Gradio's routes that read a server file (or URL) named in the request path.
_FILE_ROUTE = re.compile(r"^(?:/gradio_api)?/(file|proxy)(?:=|/)(.*)$", re.DOTALL)


# ----- who the server is ------------------------------------------------------------------------------------------


def local_addresses() -> list[str]:
    """This machine's non-loopback interface addresses (IPv4 first), read from the OS: no network traffic.

    Link-local IPv6 addresses are left out: browsers cannot put their zone id in a URL's host."""

    found: list[str] = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                address = ipaddress.ip_address(entry.address.split("%", 1)[0])
            except ValueError:
                continue
            if address.is_loopback or address.is_link_local or address.is_unspecified:
                continue
            found.append(str(address))
    return sorted(set(found), key=lambda a: (":" in a, a))


def lan_urls(settings: Settings) -> list[str]:
    """The URLs other machines on the network can open, for the start-up message."""
    if settings.host not in WILDCARD_BINDS:
        return [f"{settings.scheme}://{_url_host(settings.host)}:{settings.port}"]
    return [f"{settings.scheme}://{_url_host(a)}:{settings.port}" for a in local_addresses()]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def allowed_hosts(settings: Settings, addresses: Iterable[str] | None = None) -> frozenset[str]:
    """Every name a legitimate request may carry in `Host`: loopback, the bind address, `--server-name`, this
    machine's host name and its LAN addresses (normalised as `normalize_host` returns them)."""
    hostname = socket.gethostname().lower()
    names = {*LOOPBACK_NAMES, hostname, f"{hostname}.local", *(addresses if addresses is not None
                                                               else local_addresses())}
    for name in (settings.host, settings.server_name):
        if name and name not in WILDCARD_BINDS:
            names.add(name)
    return frozenset(n for n in (normalize_host(name) for name in names) if n)


def normalize_host(value: str) -> str | None:
    """The host part of a `Host` header, lower case, port and trailing dot removed, IP literals canonical;
    None for anything malformed (user info, paths, spaces, a bad port)."""
    value = value.strip().lower()
    if not value or any(c in value for c in "@/\\ \t?#"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not re.fullmatch(r":\d{1,5}", value[end + 1:])):
            return None
        host = value[1:end]
    elif value.count(":") == 1:
        host, port = value.split(":")
        if not port.isdigit():
            return None
    else:
        host = value  # a name, an IPv4 address or a bare IPv6 literal (invalid in Host, harmless to recognise)
    host = host.rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host if re.fullmatch(r"[a-z0-9._-]+", host) else None


# ----- middlewares ------------------------------------------------------------------------------------------------


async def _refuse(scope: Scope, send: Send, status: int, text: str) -> None:
    """A plain-text refusal (HTTP) or a policy-violation close (WebSocket)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class HostCheckMiddleware:
    """Refuse requests whose `Host` is not one of ours (400), before any route sees them."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = dict(scope.get("headers") or ()).get(b"host", b"")
            host = normalize_host(raw.decode("latin-1"))
            if host is None or host not in self.allowed:
                log.warning("Refused a request with Host %r (not one of this server's names).", raw[:100])
                await _refuse(scope, send, 400, "Invalid host header")
                return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Add nosniff, framing and referrer headers to every HTTP response (unless a route set its own)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class FilePolicy:
    """Which server files a file route may return: anything under `roots`, images under `preview_roots`."""

    roots: tuple[Path, ...]
    preview_roots: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, extra_roots: Iterable[str | Path] = ()) -> FilePolicy:
        paths = settings.paths
        roots = (paths.outputs_dir, *settings.security.allowed_paths, *(Path(p) for p in extra_roots))
        previews = (*paths.ckpt_dirs, paths.vae_dir, paths.lora_dir, paths.lycoris_dir, paths.embeddings_dir,
                    paths.esrgan_dir)
        return cls(tuple(_real(p) for p in roots), tuple(_real(p) for p in previews))

    def allows(self, requested: str) -> bool:
        """Whether `requested` (as Gradio will read it: relative to the working folder, symlinks followed) is an
        allowed file. Anything odd (NUL, backslashes, URLs, encoded dots left after decoding) is refused."""
        if not requested or "\x00" in requested or "\\" in requested or "://" in requested or \
                re.search(r"%2e|%2f|%5c", requested, re.IGNORECASE):
            return False
        real = _real(Path(os.path.abspath(requested)))
        if not real.is_file():
            return False
        if any(real.is_relative_to(root) for root in self.roots):
            return True
        return real.suffix.lower() in PREVIEW_SUFFIXES and any(real.is_relative_to(r) for r in self.preview_roots)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


class FileAccessGuard:
    """Refuse Gradio file-route requests for anything `FilePolicy` does not allow (403), and its URL proxy.

    The path checked is the one Gradio's route will read: the request path as the server decoded it once."""

    def __init__(self, app: ASGIApp, policy: FilePolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _FILE_ROUTE.match(scope.get("path", ""))
            if match is not None:
                kind, requested = match.groups()
                if kind == "proxy" or not self.policy.allows(requested):
                    await _refuse(scope, send, 403, "File not allowed")
                    return
                send = _download_unless_image(send)
        await self.app(scope, receive, send)


def _download_unless_image(send: Send) -> Send:
    """Let a file response through as Gradio made it only when it is a raster image; anything else (HTML, SVG,
    scripts, text) becomes an opaque download, which a browser never renders on the app's origin."""

    async def send_safely(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            headers = list(message.get("headers") or [])
            content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
            if content_type.split(b";", 1)[0].strip().lower() not in INLINE_FILE_TYPES:
                disposition = next((v for n, v in headers if n.lower() == b"content-disposition"), b"")
                filename = disposition.partition(b";")[2].strip()
                headers = [(n, v) for n, v in headers if n.lower() not in (b"content-type", b"content-disposition")]
                headers += [(b"content-type", b"application/octet-stream"),
                            (b"content-disposition", b"attachment" + (b"; " + filename if filename else b""))]
                message = {**message, "headers": headers}
        await send(message)

    return send_safely


# ----- HTTP Basic auth --------------------------------------------------------------------------------------------


def credentials_match(credentials: Iterable[Credential], user: str, password: str) -> bool:
    """Constant-time check against every pair (no early exit, so timing tells nothing about which part or
    which entry differed)."""
    ok = False
    given_user, given_password = user.encode(), password.encode()
    for cred in credentials:
        same_user = secrets.compare_digest(given_user, cred.user.encode())
        same_password = secrets.compare_digest(given_password, cred.password.encode())
        ok |= same_user & same_password
    return ok


def gradio_auth(credentials: tuple[Credential, ...]):
    """Gradio's `auth=` as a callable, so the UI login uses the same constant-time comparison."""

    def check(user: str, password: str) -> bool:
        return credentials_match(credentials, user, password)

    return check


def basic_auth(credentials: tuple[Credential, ...], realm: str = "sdapi") -> Callable[[Request], None]:
    """A FastAPI dependency: 401 with `WWW-Authenticate: Basic` unless the request carries a listed user:pass.

    A closure rather than a callable object: FastAPI resolves the `Request` annotation through the function's
    module globals."""

    def require_credentials(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
        if not (user and credentials_match(credentials, user, password)):
            raise HTTPException(status_code=401, detail="Incorrect or missing credentials (--api-auth).",
                                headers={"WWW-Authenticate": f'Basic realm="{realm}"'})

    return require_credentials


# ----- wiring -----------------------------------------------------------------------------------------------------


def install_security(app: Starlette, settings: Settings, file_roots: Iterable[str | Path] = (),
                     upload_dir: str | Path | None = None) -> None:
    """Add the middlewares to `app` (a FastAPI/Starlette app, before it starts). Outermost first: security headers
    (so refusals carry them too), Host check, failed-login throttle, the Gradio event guard (with the UI, given
    Gradio's `upload_dir`), file guard, then CORS (no origin allowed unless `--cors-allow-origins*` is given).
    Unhandled errors get a 500 answer with the security headers."""
    security = settings.security
    cross_origin = bool(security.cors_allow_origins or security.cors_allow_origins_regex)
    app.add_middleware(CORSMiddleware, allow_origins=list(security.cors_allow_origins),
                       allow_origin_regex=security.cors_allow_origins_regex, allow_methods=["*"],
                       allow_headers=["*"], allow_credentials=cross_origin)
    app.add_middleware(FileAccessGuard, policy=FilePolicy.from_settings(settings, file_roots))
    if upload_dir is not None:
        app.add_middleware(UploadedFilesOnly, upload_dir=upload_dir)
    if security.gradio_auth or security.api_auth:
        app.add_middleware(LoginThrottleMiddleware)
    app.add_middleware(HostCheckMiddleware, allowed=allowed_hosts(settings))
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_exception_handler(Exception, _internal_error)


async def _internal_error(request: Request, exc: Exception) -> PlainTextResponse:
    """Starlette's answer to an unhandled exception, plus the security headers: it is sent from outside every
    middleware, so `SecurityHeadersMiddleware` never sees it. (The exception itself is still logged.)"""
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    return PlainTextResponse("Internal Server Error", status_code=500, headers=headers)


def install_docs(app: FastAPI, credentials: tuple[Credential, ...]) -> None:
    """`/docs`, `/redoc` and `/openapi.json` (create the app with FastAPI's own docs URLs off): behind `--api-auth`
    when it is set, since the schema maps every route and field of the API. Add before mounting the UI at `/`."""

    guard = [Depends(basic_auth(credentials))] if credentials else []

    @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guard)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI")

    @app.get("/redoc", include_in_schema=False, dependencies=guard)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")
