"""The scripted attack run (webui/testing/attack_run.py) against the whole app as mounted (Gradio UI + API +
middlewares, tiny SD1 model), in the default configuration and in `--listen --gradio-auth --api-auth`: traversal,
foreign FileData paths on every Gradio event, CORS from a foreign origin via the LAN host, oversized inputs; then
the server must still generate normally."""
from __future__ import annotations

import socket

import pytest

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.core.settings import Credential, SecuritySettings
from webui.testing.attack_run import Target, run

UI_AUTH, API_AUTH = "admin:ui-secret", "bot:api-secret"
CONFIGS = {
    "default": {},
    "listen+auth": {"host": "0.0.0.0", "security": SecuritySettings(
        gradio_auth=(Credential(*UI_AUTH.split(":")),), api_auth=(Credential(*API_AUTH.split(":")),))},
}


def lan_host(port: int) -> str:
    """A Host header a LAN client of this machine would send (its host name: always one of the server's names)."""
    return f"{socket.gethostname().lower()}:{port}"


@pytest.mark.parametrize("config", list(CONFIGS))
def test_attack_run_finds_nothing_and_the_server_keeps_working(config, tmp_path, tiny_checkpoints):
    from webui.services import build_services

    secret = tmp_path / "server-secret.txt"
    secret.write_text("SECRET-OUTSIDE-THE-DATA-FOLDER-93b1")
    data_dir = make_data_dir(tmp_path / "data", tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=True, **CONFIGS[config]))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    authed = config != "default"
    try:
        with ServerThread(build_app(services), free_port()) as server:
            port = int(server.url.rsplit(":", 1)[1])
            target = Target(server.url, secret, ui_auth=UI_AUTH if authed else None,
                            api_auth=API_AUTH if authed else None, lan_host=lan_host(port))
            report = run(target)
    finally:
        services.runtime.executor.shutdown()
    assert report.failures == []
    # the attacks really ran: the traversal table, 4 disguises on every file event, CORS, sizes (twice with auth)
    assert report.passed > (110 if authed else 60)


def test_attack_run_reports_a_vulnerable_server(tmp_path):
    """The run is not a check that cannot fail: a server that serves any file, echoes every origin and accepts any
    size is reported on every count."""
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-OUTSIDE-THE-DATA-FOLDER-93b1")

    async def vulnerable(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        body = secret.read_bytes() if "file=" in scope["path"] else b'{"images": []}'
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"access-control-allow-origin", headers.get(b"origin", b"*")),
            (b"access-control-allow-credentials", b"true"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    with ServerThread(vulnerable, free_port()) as server:
        report = run(Target(server.url, secret), generate=False)
    kinds = {failure.split(":", 1)[0] for failure in report.failures}
    assert {"traversal", "CORS", "oversized"} <= kinds, report.failures
