"""Gradio's own API must never read a server file a client names: every Image/File/Gallery/ImageEditor input of
the real app (UI + API in one server, found by walking the app's /config) is sent FileData that points at secret
files outside the upload folder, in several disguises. Nothing of the secrets may come back, no copy may land in
Gradio's upload folder, and real uploads (gradio_client's `handle_file`) keep working."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image, PngImagePlugin

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from webui.api.gradio_guard import UploadedFilesOnly
from webui.core.settings import Credential, SecuritySettings

SECRET_PROMPT = "HIDDEN-PROMPT-7f3a9c"
SECRET_TEXT = "SECRET-FILE-CONTENT-51d2e8"
# Component types whose value is (or holds) a file the server would read.
FILE_TYPES = {"image", "imageeditor", "file", "gallery", "video", "audio", "model3d", "uploadbutton",
              "imageslider", "simpleimage", "annotatedimage", "dialogue", "multimodaltextbox"}
FILE_META = {"_type": "gradio.FileData"}
UI_LOGIN = {"username": "admin", "password": "ui-pw"}
# The default launch, and `--listen --gradio-auth admin:ui-pw --api-auth bot:api-pw`.
CONFIGS = {
    "default": {},
    "listen+auth": {"host": "0.0.0.0", "security": SecuritySettings(
        gradio_auth=(Credential(UI_LOGIN["username"], UI_LOGIN["password"]),),
        api_auth=(Credential("bot", "api-pw"),))},
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def services_and_secrets(request, tmp_path_factory, tiny_checkpoints):
    """Services (UI and --api, in one of `CONFIGS`) with a model loaded, and two secrets in a folder the server
    never uploaded: a PNG whose infotext holds a hidden prompt, and a text file."""
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("file-inputs"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=True, **CONFIGS[request.param]))
    services.models.select_checkpoint("tiny-sd1.safetensors")
    secrets = tmp_path_factory.mktemp("server-secrets")
    png_info = PngImagePlugin.PngInfo()
    png_info.add_text("parameters", f"{SECRET_PROMPT}\nSteps: 3, Sampler: Euler, Seed: 1, Size: 64x64")
    Image.new("RGB", (64, 64), (10, 200, 30)).save(secrets / "secret.png", pnginfo=png_info)
    (secrets / "secret.txt").write_text(SECRET_TEXT)
    yield services, secrets
    services.runtime.executor.shutdown()


def serve(services, layers: str = "both") -> ServerThread:
    """The real app; `layers` leaves out one of its two defences, to show that each one alone holds."""
    from webui.ui.app_ui import build_ui

    built = []
    app = build_app(services, ui_builder=lambda s: built.append(build_ui(s)) or built[0])
    if layers == "gradio check only":
        app.user_middleware = [m for m in app.user_middleware if m.cls is not UploadedFilesOnly]
    elif layers == "event guard only":
        built[0].has_launched = False
    return ServerThread(app, free_port())


@pytest.fixture(scope="module")
def served(services_and_secrets):
    services, secrets = services_and_secrets
    with serve(services) as server:
        yield server, services, secrets


def logged_in(client: httpx.Client, services) -> httpx.Client:
    """`client`, past the UI's login page when the server has one."""
    if services.settings.security.gradio_auth:
        assert client.get("/config").status_code == 401
        assert client.post("/login", data=UI_LOGIN).status_code == 200
    return client


def file_data(path: str, *, meta: bool = True, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"path": path, **extra}
    if meta:
        value["meta"] = FILE_META
    return value


def disguises(secret: Path, layers: str = "both") -> list[Any]:
    """Ways to name a server file in a FileData value. Gradio's own check alone misses the ones without `meta`
    (its image data model reads such a path unchecked): that is why the event guard exists."""
    from gradio.utils import get_upload_folder

    relative = os.path.relpath(secret, Path.cwd())
    via_upload = os.path.join(get_upload_folder(), os.path.relpath(secret, get_upload_folder()))
    with_meta = [
        file_data(str(secret)),
        file_data(str(secret), url=f"/gradio_api/file={secret}", orig_name="x.png"),
        file_data(relative),
        file_data(via_upload),
        file_data(f"file://{secret}"),
        str(secret),
    ]
    if layers == "gradio check only":
        return with_meta
    return [*with_meta, file_data(str(secret), meta=False), file_data(str(secret), meta=False, caption="x")]


def shaped(component: dict[str, Any], value: Any) -> Any:
    """`value` placed everywhere a file goes in this component's data."""
    kind, props = component["type"], component.get("props", {})
    if kind == "gallery":
        return [{"image": value, "caption": None}]
    if kind == "imageeditor":
        return {"background": value, "layers": [value], "composite": value}
    if kind in ("file", "uploadbutton") and props.get("file_count") in ("multiple", "directory"):
        return [value]
    if kind == "multimodaltextbox":
        return {"text": "", "files": [value]}
    return value


def file_endpoints(config: dict[str, Any]) -> list[tuple[int, dict[str, Any], list[int]]]:
    """(fn index, dependency, positions of its file-like inputs) for every event handler of the app."""
    components = {c["id"]: c for c in config["components"]}
    found = []
    for index, dependency in enumerate(config["dependencies"]):
        positions = [i for i, cid in enumerate(dependency["inputs"]) if components[cid]["type"] in FILE_TYPES]
        if positions and dependency.get("backend_fn"):
            found.append((dependency.get("id", index), dependency, positions))
    return sorted(found, key=lambda item: len(item[1]["inputs"]))


def call(client: httpx.Client, fn_index: int, data: list[Any]) -> str:
    """Run one event through Gradio's queue the way the browser does; returns the whole event stream's text."""
    session = uuid.uuid4().hex
    joined = client.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                           "event_data": None, "trigger_id": None})
    if joined.status_code != 200:
        return joined.text
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        text = ""
        for line in stream.iter_lines():
            text += line + "\n"
            if '"process_completed"' in line or '"close_stream"' in line:
                break
    return text


def call_named(client: httpx.Client, api_name: str, data: list[Any]) -> str:
    """The same through `/gradio_api/call/<api_name>` (the route the public API docs show)."""
    started = client.post(f"/gradio_api/call/{api_name}", json={"data": data})
    if started.status_code != 200:
        return started.text
    return client.get(f"/gradio_api/call/{api_name}/{started.json()['event_id']}").text


def upload_copies(secrets: list[Path], since: float) -> list[Path]:
    """Files in Gradio's upload folder written after `since` whose bytes are one of the secrets."""
    from gradio.utils import get_upload_folder

    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in secrets}
    copies = []
    for path in Path(get_upload_folder()).rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime >= since and \
                    hashlib.sha256(path.read_bytes()).hexdigest() in digests:
                copies.append(path)
        except OSError:
            continue
    return copies


def leaked(text: str) -> bool:
    return SECRET_PROMPT in text or SECRET_TEXT in text


@pytest.mark.parametrize(("services_and_secrets", "layers"), [
    ("default", "both"), ("default", "gradio check only"), ("default", "event guard only"),
    ("listen+auth", "both")], indirect=["services_and_secrets"])
def test_every_file_input_refuses_server_paths(services_and_secrets, layers):
    services, secrets_dir = services_and_secrets
    secrets = [secrets_dir / "secret.png", secrets_dir / "secret.txt"]
    started = secrets[0].stat().st_mtime
    with serve(services, layers) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        client = logged_in(http, services)
        config = client.get("/config").json()
        endpoints = file_endpoints(config)
        names = {dependency.get("api_name") for _, dependency, _ in endpoints}
        assert {"pnginfo", "extras", "img2img", "pnginfo_send_to_img2img"} <= names, names
        components = {c["id"]: c for c in config["components"]}
        attempts = 0
        for fn_index, dependency, positions in endpoints:
            defaults = [components[cid].get("props", {}).get("value") for cid in dependency["inputs"]]
            for secret in secrets:
                for value in disguises(secret, layers):
                    for position in positions:
                        data = [None if i in positions else d for i, d in enumerate(defaults)]
                        data[position] = shaped(components[dependency["inputs"][position]], value)
                        answers = [call(client, fn_index, data)]
                        if dependency.get("api_name") and dependency.get("api_visibility") != "private":
                            answers.append(call_named(client, dependency["api_name"], data))
                        for answer in answers:
                            attempts += 1
                            assert not leaked(answer), (dependency.get("api_name"), value, answer[:500])
                            for url in _file_urls(answer):
                                served_file = client.get(url)
                                assert not leaked(served_file.text), (dependency.get("api_name"), url)
        assert attempts >= 100
        assert upload_copies(secrets, started) == []
        # The server still answers normally afterwards.
        assert client.get("/config").status_code == 200


def _file_urls(answer: str) -> list[str]:
    """Every `/gradio_api/file=` URL in an event stream (where a copied file would be offered)."""
    urls = []
    for line in answer.splitlines():
        if not line.startswith("data:"):
            continue
        try:
            payload = json.loads(line[5:])
        except json.JSONDecodeError:
            continue
        stack = [payload]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and "/gradio_api/file=" in item:
                urls.append(item[item.index("/gradio_api/file="):])
    return urls


def test_uploaded_files_still_work(served, tmp_path):
    """A real upload (what the browser and gradio_client do) is read as before."""
    server, services, _ = served
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "an uploaded prompt\nSteps: 4, Sampler: Euler, Seed: 9, Size: 64x64")
    mine = tmp_path / "mine.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(mine, pnginfo=info)
    auth = (UI_LOGIN["username"], UI_LOGIN["password"]) if services.settings.security.gradio_auth else None
    client = Client(server.url, verbose=False, auth=auth)
    html, text = client.predict(handle_file(str(mine)), api_name="/pnginfo")
    assert "an uploaded prompt" in text and "an uploaded prompt" in html
    *_, message = client.predict(handle_file(str(mine)), text, api_name="/pnginfo_send_to_img2img")
    assert "no generation parameters" not in message
