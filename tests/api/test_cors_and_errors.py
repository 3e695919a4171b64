"""Protections that must hold on every path of the real app (UI + API in one server), errors included: no
cross-origin access unless --cors-allow-origins says so (asked through a LAN Host, where Gradio's own CORS handling
would echo any origin), security headers on 500 answers, downloads instead of inline pages from allowed folders,
API docs behind --api-auth, and failed logins slowed down per client address."""
from __future__ import annotations

import base64
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app import build_app
from tests.conftest import ServerThread, free_port, make_settings
from webui.api.login_throttle import FailedLoginThrottle
from webui.api.security import local_addresses
from webui.core.settings import Credential, SecuritySettings

EVIL = "http://evil.example"
UI_USER, UI_PASSWORD = "admin", "ui-pw"
API_USER, API_PASSWORD = "bot", "api-pw"
HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "SAMEORIGIN", "referrer-policy": "same-origin"}
CORS_PATHS = ["/gradio_api/info", "/config", "/sdapi/v1/samplers", "/gradio_api/queue/join"]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def lan_host(port: int) -> str:
    """A Host header naming this machine on the network (an address the server accepts when listening)."""
    name = (local_addresses() or [socket.gethostname()])[0]
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """Serve the real app with the given security settings, bound for the LAN (as with --listen)."""
    from webui.services import build_services

    made = []

    def serve(**security_fields) -> ServerThread:
        data_dir = tmp_path_factory.mktemp("exposed")
        services = build_services(make_settings(data_dir, host="0.0.0.0", api=True,
                                                security=SecuritySettings(**security_fields)))
        server = ServerThread(build_app(services), free_port()).__enter__()
        made.append((server, services))
        return server

    yield serve
    for server, services in made:
        server.__exit__(None, None, None)
        services.runtime.executor.shutdown()


@pytest.fixture(scope="module")
def default_server(start) -> ServerThread:
    return start()


def client_for(server: ServerThread, **kwargs) -> httpx.Client:
    port = int(server.url.rsplit(":", 1)[1])
    return httpx.Client(base_url=server.url, headers={"Host": lan_host(port)}, timeout=60, **kwargs)


def preflight(client: httpx.Client, path: str, origin: str) -> httpx.Response:
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type"})


def simple(client: httpx.Client, path: str, origin: str) -> httpx.Response:
    if path == "/gradio_api/queue/join":
        return client.post(path, headers={"Origin": origin}, json={"data": [], "fn_index": 0, "session_hash": "x"})
    return client.get(path, headers={"Origin": origin})


def cross_origin_headers(response: httpx.Response) -> dict[str, str]:
    """The headers that would let a page on another origin read the answer (or send credentials)."""
    return {k: v for k, v in response.headers.items()
            if k.lower() in ("access-control-allow-origin", "access-control-allow-credentials")}


# ----- CORS ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", CORS_PATHS)
def test_no_cross_origin_access_by_default(default_server, path):
    with client_for(default_server) as client:
        assert client.get("/config").status_code == 200  # the LAN Host is one the server accepts
        answered = simple(client, path, EVIL)
        assert answered.status_code != 400 or "host" not in answered.text.lower()
        assert cross_origin_headers(answered) == {}, (path, answered.headers)
        asked = preflight(client, path, EVIL)
        assert cross_origin_headers(asked) == {}, (path, asked.status_code, asked.headers)
        assert asked.status_code >= 400


@pytest.fixture(scope="module")
def cors_server(start) -> ServerThread:
    return start(cors_allow_origins=("https://a",))


@pytest.mark.parametrize("path", CORS_PATHS)
def test_only_the_configured_origin_gets_access(cors_server, path):
    with client_for(cors_server) as client:
        good = preflight(client, path, "https://a")
        assert good.status_code == 200 and good.headers["access-control-allow-origin"] == "https://a"
        assert simple(client, path, "https://a").headers["access-control-allow-origin"] == "https://a"
        assert "access-control-allow-origin" not in preflight(client, path, EVIL).headers
        assert "access-control-allow-origin" not in simple(client, path, EVIL).headers


# ----- errors and files ---------------------------------------------------------------------------------------------

def test_unhandled_errors_keep_the_security_headers(default_server, monkeypatch):
    from webui.services.network_service import NetworkService

    def broken(self):
        raise RuntimeError("internal detail that must not be shown")

    monkeypatch.setattr(NetworkService, "embedding_list", broken)
    with client_for(default_server) as client:
        response = client.get("/sdapi/v1/embeddings")
        assert response.status_code == 500
        assert "internal detail" not in response.text
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value, name
    with client_for(default_server) as client:  # (uvicorn closes a connection whose request failed)
        assert client.get("/sdapi/v1/samplers").status_code == 200  # and the server keeps serving


@pytest.fixture(scope="module")
def allowed_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("allowed")
    (folder / "page.html").write_text("<html><script>alert(document.cookie)</script></html>")
    (folder / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (folder / "notes.txt").write_text("plain notes")
    (folder / "script.js").write_text("alert(1)")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(folder / "picture.png")
    return folder


@pytest.fixture(scope="module")
def allowed_server(start, allowed_folder) -> ServerThread:
    """Started with --gradio-allowed-path <allowed_folder>."""
    return start(allowed_paths=(allowed_folder,))


@pytest.mark.parametrize("name", ["page.html", "drawing.svg", "notes.txt", "script.js"])
@pytest.mark.parametrize("ranged", [False, True])
def test_allowed_folder_serves_pages_only_as_downloads(allowed_server, allowed_folder, name, ranged):
    server = allowed_server
    extra = {"Range": "bytes=0-5"} if ranged else {}
    with client_for(server) as client:
        response = client.get(f"/gradio_api/file={allowed_folder / name}", headers=extra)
        assert response.status_code in (200, 206)
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment")
        assert response.headers["x-content-type-options"] == "nosniff"


def test_allowed_folder_images_stay_inline(allowed_server, allowed_folder):
    with client_for(allowed_server) as client:
        response = client.get(f"/gradio_api/file={allowed_folder / 'picture.png'}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.headers["content-disposition"].startswith("inline")


# ----- docs and logins ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secured_server(start) -> ServerThread:
    return start(gradio_auth=(Credential(UI_USER, UI_PASSWORD),), api_auth=(Credential(API_USER, API_PASSWORD),))


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/redoc"])
def test_api_docs_need_the_api_password(secured_server, default_server, path):
    with client_for(secured_server) as client:
        refused = client.get(path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert "/sdapi/v1/txt2img" not in refused.text
        shown = client.get(path, headers=basic(API_USER, API_PASSWORD))
        assert shown.status_code == 200
    with client_for(secured_server) as client:
        assert "/sdapi/v1/txt2img" in client.get("/openapi.json", headers=basic(API_USER, API_PASSWORD)).text
    with client_for(default_server) as client:
        assert client.get(path).status_code == 200  # without --api-auth the docs stay open, as in A1111


def from_address(server: ServerThread, address: str) -> httpx.Client:
    """A client connecting from another loopback address (another machine, as far as the server can tell)."""
    return httpx.Client(base_url=server.url, timeout=60, transport=httpx.HTTPTransport(local_address=address))


def test_failed_ui_logins_are_slowed_per_client(secured_server):
    wrong = {"username": UI_USER, "password": "guess"}
    right = {"username": UI_USER, "password": UI_PASSWORD}
    with from_address(secured_server, "127.0.0.3") as attacker, from_address(secured_server, "127.0.0.4") as user:
        assert [attacker.post("/login", data=wrong).status_code for _ in range(5)] == [400] * 5
        locked = attacker.post("/login", data=wrong)
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert "Too many failed logins" in locked.json()["detail"]
        assert attacker.post("/login", data=right).status_code == 429  # even the right password waits
        assert user.post("/login", data=right).status_code == 200
        assert user.get("/config").status_code == 200


def test_failed_api_logins_are_slowed_per_client(secured_server):
    with from_address(secured_server, "127.0.0.5") as attacker, from_address(secured_server, "127.0.0.6") as user:
        guesses = [attacker.get("/sdapi/v1/samplers", headers=basic(API_USER, f"guess{i}")).status_code
                   for i in range(5)]
        assert guesses == [401] * 5
        assert attacker.get("/sdapi/v1/samplers", headers=basic(API_USER, "again")).status_code == 429
        assert attacker.get("/sdapi/v1/samplers", headers=basic(API_USER, API_PASSWORD)).status_code == 429
        assert user.get("/sdapi/v1/samplers", headers=basic(API_USER, API_PASSWORD)).status_code == 200
        # Asking without credentials (a browser's first try) is not a failed login.
        for _ in range(6):
            assert user.get("/sdapi/v1/samplers").status_code == 401
        assert user.get("/sdapi/v1/samplers", headers=basic(API_USER, API_PASSWORD)).status_code == 200


def test_parallel_guesses_gain_nothing(secured_server):
    def guess(i: int) -> int:
        with from_address(secured_server, "127.0.0.7") as attacker:
            return attacker.post("/login", data={"username": UI_USER, "password": f"p{i}"}).status_code

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(guess, range(24)))
    assert answers.count(400) <= 5 and answers.count(429) >= 19


def test_the_throttle_forgets_old_failures():
    now = [0.0]
    throttle = FailedLoginThrottle(max_failures=2, window=10.0, clock=lambda: now[0])
    for _ in range(2):
        throttle.started("a")
        throttle.finished("a", failed=True)
    assert throttle.wait("a") == pytest.approx(10.0) and throttle.wait("b") == 0
    now[0] = 10.5
    assert throttle.wait("a") == 0
    small = FailedLoginThrottle(max_failures=1, window=10.0, clock=lambda: now[0], max_tracked=2)
    for client in ("x", "y", "z"):
        small.finished(client, failed=True)
    assert small.wait("x") == 0 and small.wait("z") > 0  # the oldest client was forgotten, memory stays bounded
