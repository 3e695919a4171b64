"""Who may call the routes extensions add, through the whole app as mounted (Gradio + API + middlewares): API
routes follow `--api-auth` (or the UI login when only `--gradio-auth` is set), page routes (what an extension's
page script fetches, like tag autocomplete) follow the UI's login, so a browser gets them; and an extension route
that raises answers with a clear error while the extension stays on."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import httpx
import pytest

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir
from tests.extensions.conftest import extension_settings
from webui.core.settings import Credential, SecuritySettings

UI_LOGIN = {"username": "painter", "password": "brush-1"}
API = ("bot", "t0ken")
ROUTES = '''
from webui.extensions.api import RequestRejected


def setup(ext):
    ext.add_api_route("/page", lambda: {"for": "page"}, page=True)
    ext.add_api_route("/data", lambda: {"for": "programs"})

    def boom():
        raise RuntimeError("disk on fire")

    async def async_boom():
        raise KeyError("missing")

    def reject(q: str = ""):
        raise RequestRejected(f"'{q}' is not a colour")

    ext.add_api_route("/boom", boom)
    ext.add_api_route("/async-boom", async_boom)
    ext.add_api_route("/reject", reject)
    ext.before_generation(lambda request: request)
'''


def routes_extension(data_dir: Path) -> None:
    folder = data_dir / "extensions" / "routes-ext"
    folder.mkdir(parents=True)
    (folder / "extension.toml").write_text('[extension]\nname = "routes-ext"\nversion = "1.0.0"\n', encoding="utf-8")
    (folder / "main.py").write_text(ROUTES, encoding="utf-8")


def small_ui(services) -> gr.Blocks:
    with gr.Blocks() as blocks:
        gr.Markdown("ui")
    return blocks


@pytest.fixture(scope="module")
def serve(tmp_path_factory, tiny_checkpoints):
    """`serve(gradio_auth, api_auth, nowebui)` -> (services, base URL) of an app with the routes extension."""
    from webui.services import build_services

    started = []

    def start(gradio_auth: bool, api_auth: bool, nowebui: bool = False):
        data_dir = make_data_dir(tmp_path_factory.mktemp("route-auth"), tiny_checkpoints, ("sd1",))
        routes_extension(data_dir)
        security = SecuritySettings(gradio_auth=(Credential(*UI_LOGIN.values()),) if gradio_auth else (),
                                    api_auth=(Credential(*API),) if api_auth else ())
        services = build_services(extension_settings(data_dir, security=security, nowebui=nowebui))
        server = ServerThread(build_app(services, ui_builder=small_ui), free_port())
        server.__enter__()
        started.append((services, server))
        return services, server.url

    yield start
    for services, server in started:
        server.__exit__(None, None, None)
        services.runtime.shutdown()


def status(url: str, path: str, **kwargs) -> int:
    return httpx.get(f"{url}/ext/routes-ext{path}", timeout=30, **kwargs).status_code


def test_with_both_logins_the_page_route_takes_the_ui_session_and_the_api_route_either(serve):
    _, url = serve(gradio_auth=True, api_auth=True)
    anonymous = httpx.get(f"{url}/ext/routes-ext/page", timeout=30)
    assert anonymous.status_code == 401 and "www-authenticate" not in anonymous.headers  # no password pop-up
    api_anonymous = httpx.get(f"{url}/ext/routes-ext/data", timeout=30)
    assert api_anonymous.status_code == 401 and api_anonymous.headers["www-authenticate"].startswith("Basic")
    assert status(url, "/page", auth=API) == status(url, "/data", auth=API) == 200
    assert status(url, "/page", auth=("bot", "wrong")) == 401
    with httpx.Client(base_url=url, timeout=30) as browser:
        assert browser.post("/login", data=UI_LOGIN).status_code == 200
        assert browser.get("/ext/routes-ext/page").json() == {"for": "page"}
        assert browser.get("/ext/routes-ext/data").status_code == 200


def test_with_only_api_auth_the_page_route_is_as_open_as_the_ui(serve):
    _, url = serve(gradio_auth=False, api_auth=True)
    assert status(url, "/page") == 200  # the browser's script gets its data (tag autocomplete under --api-auth)
    assert status(url, "/data") == 401 and status(url, "/data", auth=API) == 200


def test_with_only_gradio_auth_no_route_runs_for_an_anonymous_visitor(serve):
    _, url = serve(gradio_auth=True, api_auth=False)
    assert status(url, "/page") == status(url, "/data") == 401
    with httpx.Client(base_url=url, timeout=30) as browser:
        browser.post("/login", data=UI_LOGIN)
        assert browser.get("/ext/routes-ext/page").status_code == browser.get("/ext/routes-ext/data").status_code \
            == 200


def test_without_a_ui_page_routes_are_api_routes(serve):
    _, url = serve(gradio_auth=False, api_auth=True, nowebui=True)
    assert status(url, "/page") == 401 and status(url, "/page", auth=API) == 200


def test_a_failing_route_answers_clearly_and_the_extension_stays_on(serve, caplog):
    services, url = serve(gradio_auth=False, api_auth=False)
    with caplog.at_level("ERROR", logger="extensions"):
        boom = httpx.get(f"{url}/ext/routes-ext/boom", timeout=30)
    assert boom.status_code == 500
    assert "Extension 'routes-ext' failed in its route /boom (RuntimeError: disk on fire)" in boom.json()["detail"]
    assert "disk on fire" in caplog.text and "Traceback" in caplog.text
    async_boom = httpx.get(f"{url}/ext/routes-ext/async-boom", timeout=30)
    assert async_boom.status_code == 500 and "KeyError" in async_boom.json()["detail"]
    rejected = httpx.get(f"{url}/ext/routes-ext/reject", params={"q": "loud"}, timeout=30)
    assert rejected.status_code == 422 and rejected.json()["detail"] == "'loud' is not a colour"
    assert status(url, "/data") == 200
    (info,) = [i for i in services.extensions.extensions() if i.name == "routes-ext"]
    assert info.status == "active" and not info.error
