"""Safe network exposure of the real app (Gradio UI + API in one server): UI and API auth, Host-header attacks,
security headers, a table of path-traversal attacks on every file-serving route, CORS, TLS and the --listen
messages."""
from __future__ import annotations

import base64
import dataclasses
import datetime
import http.client
import ipaddress
import os
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest

from app import build_app, exposure_warnings, server_options
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.api.security import (
    FilePolicy,
    allowed_hosts,
    credentials_match,
    lan_urls,
    local_addresses,
    normalize_host,
)
from webui.core.requests import GenerationRequest
from webui.core.settings import Credential, SecuritySettings

UI_USER, UI_PASSWORD = "admin", "s3cret:pw"
API_USER, API_PASSWORD = "bot", "t0ken"
SECRET_TEXT = "TOPSECRET-DO-NOT-SERVE"
HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "SAMEORIGIN", "referrer-policy": "same-origin"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def secured(tmp_path_factory, tiny_checkpoints):
    """The real UI and API with --gradio-auth and --api-auth, one saved image in outputs, a secret file beside
    outputs, and symlinks inside outputs that point at it."""
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("secured"), tiny_checkpoints, ("sd1",))
    security = SecuritySettings(gradio_auth=(Credential(UI_USER, UI_PASSWORD),),
                                api_auth=(Credential(API_USER, API_PASSWORD),))
    services = build_services(make_settings(data_dir, api=True, security=security))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    result = services.generation.txt2img(GenerationRequest(prompt="x", steps=1, width=32, height=32, seed=3,
                                                           save_images=True))
    outputs = services.settings.paths.outputs_dir
    secret = data_dir / "secret.txt"
    secret.write_text(SECRET_TEXT)
    os.symlink(secret, outputs / "link-out.txt")
    os.symlink(data_dir, outputs / "link-dir")
    (data_dir / "models" / "Lora" / "preview.png").write_bytes(result.images[0].path.read_bytes())
    with ServerThread(build_app(services), free_port()) as server:
        yield server, services, result.images[0].path, secret
    services.runtime.executor.shutdown()


def raw_get(url: str, path: str, host: str | None = None, headers: dict[str, str] | None = None):
    """One GET with the path and Host sent exactly as given (httpx would normalise `..` and encodings)."""
    parsed = httpx.URL(url)
    conn = http.client.HTTPConnection(parsed.host, parsed.port, timeout=60)
    try:
        all_headers = {"Host": host if host is not None else f"127.0.0.1:{parsed.port}", **(headers or {})}
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for key, value in all_headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def logged_in(secured) -> dict[str, str]:
    """The UI's session cookie after a good login."""
    server = secured[0]
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/login", data={"username": UI_USER, "password": UI_PASSWORD})
        assert response.status_code == 200, response.text
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}


# ----- auth ---------------------------------------------------------------------------------------------------------

def test_ui_needs_the_gradio_login(secured, logged_in):
    server, _, image, _ = secured
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/config").status_code == 401
        assert client.get("/gradio_api/info").status_code == 401
        assert client.get(f"/gradio_api/file={image}").status_code == 401
        assert client.post("/login", data={"username": UI_USER, "password": "wrong"}).status_code == 400
        assert client.post("/login", data={"username": "nobody", "password": UI_PASSWORD}).status_code == 400
    with httpx.Client(base_url=server.url, headers=logged_in) as client:
        assert client.get("/config").status_code == 200
        assert client.get("/gradio_api/info").status_code == 200


def test_api_needs_basic_auth(secured):
    server = secured[0]
    with httpx.Client(base_url=server.url) as client:
        missing = client.get("/sdapi/v1/samplers")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Basic")
        assert client.get("/sdapi/v1/samplers", headers=basic(API_USER, "wrong")).status_code == 401
        assert client.get("/sdapi/v1/samplers", headers=basic(UI_USER, UI_PASSWORD)).status_code == 401
        assert client.get("/sdapi/v1/samplers", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
        assert client.post("/sdapi/v1/txt2img", json={}).status_code == 401
        assert client.get("/sdapi/v1/samplers", headers=basic(API_USER, API_PASSWORD)).status_code == 200
        generated = client.post("/sdapi/v1/txt2img", headers=basic(API_USER, API_PASSWORD),
                                json={"prompt": "x", "steps": 1, "width": 32, "height": 32})
        assert generated.status_code == 200


def test_credentials_compare_every_entry():
    creds = (Credential("a", "1"), Credential("b", "2:3"))
    assert credentials_match(creds, "b", "2:3") and credentials_match(creds, "a", "1")
    assert not credentials_match(creds, "a", "2:3") and not credentials_match(creds, "", "")
    assert not credentials_match((), "a", "1")
    assert credentials_match((Credential("jürgen", "pässword"),), "jürgen", "pässword")


# ----- security headers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/config", "/sdapi/v1/samplers", "/docs", "/no/such/page",
                                  "/gradio_api/file=/etc/passwd"])
def test_security_headers_on_every_response(secured, path):
    status, headers, _ = raw_get(secured[0].url, path)
    assert status < 500
    for name, value in HEADERS.items():
        assert headers.get(name) == value, (path, name)


def test_security_headers_on_refusals(secured):
    status, headers, _ = raw_get(secured[0].url, "/", host="evil.example")
    assert status == 400 and headers["x-frame-options"] == "SAMEORIGIN"


# ----- Host header ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:7860", "127.0.0.1.evil.example", "localhost.evil.example", "evil.localhost.example",
    "127.0.0.2", "[::2]", "10.255.255.1", "user@127.0.0.1", "127.0.0.1/evil", "127.0.0.1:port", "",
    "127.0.0.1 evil.example", "0.0.0.0",
])
@pytest.mark.parametrize("path", ["/", "/sdapi/v1/samplers", "/gradio_api/info"])
def test_foreign_host_headers_are_refused(secured, host, path):
    status, _, body = raw_get(secured[0].url, path, host=host)
    assert status == 400, (host, path, status)
    assert b"Invalid host header" in body


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:7860", "LOCALHOST:1", "[::1]:7860", "127.0.0.1."])
def test_own_host_names_are_accepted(secured, host):
    status, _, _ = raw_get(secured[0].url, "/", host=host)
    assert status == 200


def test_allowed_hosts_cover_bind_address_server_name_and_lan(tmp_path):
    settings = make_settings(tmp_path, host="0.0.0.0", server_name=None)
    hosts = allowed_hosts(settings, addresses=["192.168.1.20", "fd00::5"])
    assert {"localhost", "127.0.0.1", "::1", "192.168.1.20", "fd00::5"} <= hosts
    assert "0.0.0.0" not in hosts
    named = allowed_hosts(make_settings(tmp_path, host="studio.lan", server_name="studio.lan"), addresses=[])
    assert "studio.lan" in named
    assert normalize_host("[0:0:0:0:0:0:0:1]:80") == "::1"
    assert normalize_host("Studio.LAN.:8080") == "studio.lan"
    assert normalize_host("a:b:c") is None or normalize_host("a:b:c") not in hosts


# ----- files: what may be served -----------------------------------------------------------------------------------

def attack_paths(outputs: Path, data_dir: Path, upload_dir: str) -> list[str]:
    """At least 20 ways to ask a file route for something outside outputs (or for a model file)."""
    out = str(outputs)
    return [
        "/gradio_api/file=../../../../../../etc/passwd",
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=//etc/passwd",
        "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/gradio_api/file=%252e%252e/%252e%252e/%252e%252e/etc/passwd",
        "/gradio_api/file=..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/gradio_api/file=..\\..\\..\\..\\etc\\passwd",
        "/gradio_api/file=..%5c..%5c..%5cetc%5cpasswd",
        f"/gradio_api/file={out}/../secret.txt",
        f"/gradio_api/file={out}/%2e%2e/secret.txt",
        f"/gradio_api/file={out}/%252e%252e/secret.txt",
        f"/gradio_api/file={out}/link-out.txt",
        f"/gradio_api/file={out}/link-dir/secret.txt",
        f"/gradio_api/file={data_dir}/secret.txt",
        f"/gradio_api/file={data_dir}/config.json",
        f"/gradio_api/file={data_dir}/models/Stable-diffusion/tiny-sd1.safetensors",
        f"/gradio_api/file={out}%00/../secret.txt",
        f"/gradio_api/file={upload_dir}/../../../../etc/passwd",
        "/gradio_api/file=/proc/self/environ",
        "/gradio_api/file=~/.bashrc",
        "/gradio_api/file=tests/conftest.py",
        "/gradio_api/file=file:///etc/passwd",
        "/gradio_api/file=http://127.0.0.1:1/sdapi/v1/options",
        "/gradio_api/file/../../../../etc/passwd",
        f"/gradio_api/file/{data_dir}/secret.txt",
        "/file=/etc/passwd",
        f"/file={out}/../secret.txt",
        "/gradio_api/proxy=http://127.0.0.1:1/",
        "/static/../../../../../../etc/passwd",
        "/static/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/svelte/../../../../../etc/passwd",
        "/favicon.ico/../../../etc/passwd",
    ]


def test_path_traversal_attacks_are_refused(secured, logged_in):
    from gradio.utils import get_upload_folder

    server, services, _, secret = secured
    paths = attack_paths(services.settings.paths.outputs_dir, services.settings.paths.data_dir,
                         get_upload_folder())
    assert len(paths) >= 20
    for path in paths:
        status, _, body = raw_get(server.url, path, headers=logged_in)
        assert status in (400, 403, 404), (path, status)
        assert SECRET_TEXT.encode() not in body and b"root:" not in body and b"import pytest" not in body, path


def test_a_generated_image_is_served_and_model_files_are_not(secured, logged_in):
    server, services, image, _ = secured
    status, headers, body = raw_get(server.url, f"/gradio_api/file={image}", headers=logged_in)
    assert status == 200 and body == image.read_bytes() and headers["content-type"] == "image/png"
    relative = image.relative_to(Path.cwd()) if image.is_relative_to(Path.cwd()) else None
    if relative is not None:
        assert raw_get(server.url, f"/gradio_api/file={relative}", headers=logged_in)[0] == 200
    policy = FilePolicy.from_settings(services.settings)
    assert policy.allows(str(services.settings.paths.lora_dir / "preview.png"))
    assert not policy.allows(str(services.settings.paths.ckpt_dir / "tiny-sd1.safetensors"))


# ----- CORS, TLS, --listen -------------------------------------------------------------------------------------------

@pytest.fixture
def api_only(tmp_path):
    """An API-only server factory (no model loaded: the table routes need none)."""
    from webui.services import build_services

    made = []

    def start(**security_fields):
        services = build_services(make_settings(tmp_path, api=True, nowebui=True,
                                                security=SecuritySettings(**security_fields)))
        made.append(services)
        return services, build_app(services)

    yield start
    for services in made:
        services.runtime.executor.shutdown()


def test_cors_only_for_configured_origins(api_only, secured):
    status, headers, _ = raw_get(secured[0].url, "/sdapi/v1/samplers", headers={
        "Origin": "https://evil.example", **basic(API_USER, API_PASSWORD)})
    assert status == 200 and "access-control-allow-origin" not in headers
    _, app = api_only(cors_allow_origins=("https://good.example",), cors_allow_origins_regex=r"https://.*\.trusted")
    with ServerThread(app, free_port()) as server:
        for origin, allowed in (("https://good.example", True), ("https://x.trusted", True),
                                ("https://evil.example", False)):
            _, headers, _ = raw_get(server.url, "/sdapi/v1/samplers", headers={"Origin": origin})
            assert (headers.get("access-control-allow-origin") == origin) is allowed, origin


def _self_signed(folder: Path) -> tuple[Path, Path]:
    pytest.importorskip("cryptography", reason="the cryptography package is needed to make a test certificate")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_file, cert_file = folder / "key.pem", folder / "cert.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def test_tls_serves_https(api_only, tmp_path):
    import uvicorn

    key_file, cert_file = _self_signed(tmp_path)
    services, app = api_only(tls_keyfile=key_file, tls_certfile=cert_file)
    port = free_port()
    options = {**server_options(services.settings), "host": "127.0.0.1", "port": port}
    assert options["ssl_keyfile"] == str(key_file) and options["ssl_certfile"] == str(cert_file)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        context = ssl.create_default_context(cafile=str(cert_file))
        with httpx.Client(verify=context) as client:
            response = client.get(f"https://127.0.0.1:{port}/sdapi/v1/samplers")
            assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
        with pytest.raises(httpx.HTTPError), httpx.Client() as plain:
            plain.get(f"http://127.0.0.1:{port}/sdapi/v1/samplers")
    finally:
        server.should_exit = True
        thread.join(10)


def test_listen_messages(tmp_path):
    loopback = make_settings(tmp_path)
    assert exposure_warnings(loopback) == []
    exposed = make_settings(tmp_path, host="0.0.0.0", api=True)
    warnings = exposure_warnings(exposed)
    assert len(warnings) == 2 and "--gradio-auth" in warnings[0] and "--api-auth" in warnings[1]
    protected = dataclasses.replace(exposed, security=SecuritySettings(
        gradio_auth=(Credential("a", "b"),), api_auth=(Credential("c", "d"),)))
    assert exposure_warnings(protected) == []
    urls = lan_urls(exposed)
    assert urls == [f"http://{a if ':' not in a else f'[{a}]'}:7860" for a in local_addresses()]
    assert all("127.0.0.1" not in url for url in urls)
    assert lan_urls(make_settings(tmp_path, host="192.0.2.7")) == ["http://192.0.2.7:7860"]


def test_listen_announces_lan_urls_and_warns(tmp_path, capsys, caplog, monkeypatch):
    import app as app_module

    monkeypatch.setattr(app_module, "lan_urls", lambda settings: ["http://192.0.2.5:7860"])
    with caplog.at_level("WARNING"):
        app_module._announce(make_settings(tmp_path, host="0.0.0.0", api=False))
    printed = capsys.readouterr().out
    assert "Running on local URL:  http://127.0.0.1:7860" in printed
    assert "Running on network URL: http://192.0.2.5:7860" in printed
    assert "without a password" in caplog.text and "--gradio-auth" in caplog.text
