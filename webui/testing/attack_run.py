"""A scripted attack run against a running studio server: what an attacker on the LAN (or a web page in the user's
browser) would try first. Use it on your own server after changing the network flags:

    python -m webui.testing.attack_run http://127.0.0.1:7860 --secret /path/outside/the/data/folder.txt \
        [--ui-auth user:pass] [--api-auth user:pass] [--lan-host 192.168.1.20:7860]

It sends only a bounded number of requests, only to the URL given, and checks four things:
- traversal: the file routes never serve a file outside what the server shares (the `--secret` file, /etc/passwd);
- foreign files through Gradio's event API: every event with a file input is sent FileData naming the secret;
- cross-origin access: a foreign `Origin` (sent with the LAN `Host` when given) gets no CORS grant;
- oversized input: a huge declared body, a decompression-bomb PNG, a billion-cell X/Y/Z plot, a 100000 px image
  are refused (413/422) promptly;
and then that the server still answers normally. Exit status 1 when any check fails.

Why it lives in `webui/testing`: the test suite runs it against the whole app in the default and in the
`--listen --gradio-auth --api-auth` configurations (tests/api/test_attack_run.py), and users can run the same file.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

EVIL_ORIGIN = "http://evil.example"
FILE_INPUT_TYPES = {"image", "imageeditor", "file", "gallery", "uploadbutton", "multimodaltextbox"}
REFUSED = {400, 401, 403, 404, 405, 413, 422, 429}
PROMPT_SECONDS = 10.0


@dataclass
class Report:
    """Failed checks, by attack; `passed` counts the checks that held."""

    failures: list[str] = field(default_factory=list)
    passed: int = 0

    def check(self, ok: bool, kind: str, what: str) -> None:
        """Count one check of attack `kind` ("traversal", "file-input", "CORS", "oversized", "serving")."""
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{kind}: {what}")


@dataclass(frozen=True)
class Target:
    """Where and as whom to attack. `ui_auth` / `api_auth` are "user:pass" (the attack then runs as a logged-in
    user too: an insider must not read server files either)."""

    url: str
    secret: Path
    ui_auth: str | None = None
    api_auth: str | None = None
    lan_host: str | None = None


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of `width` x `height` black pixels, compressed row by row (never held in memory whole):
    30000 x 30000 is ~110 KB and would decode to 900 million pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _secret_markers(secret: Path) -> list[bytes]:
    data = secret.read_bytes()
    return [data[:64]] if data else []


def _leaks(body: bytes, markers: list[bytes]) -> bool:
    return any(marker and marker in body for marker in markers) or b"root:x:0:0" in body


def _basic(credentials: str | None) -> dict[str, str]:
    if not credentials:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def _ui_client(target: Target) -> httpx.Client:
    """An httpx client, past the UI login when the server has one and credentials were given."""
    client = httpx.Client(base_url=target.url, timeout=60, verify=False)
    if target.ui_auth:
        user, _, password = target.ui_auth.partition(":")
        client.post("/login", data={"username": user, "password": password})
    return client


def _raw(target: Target, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """One request with the path and headers exactly as given (httpx would normalise `..` and encodings)."""
    parts = urlsplit(target.url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in {"Host": parts.netloc, **headers}.items():
            conn.putheader(key, value)
        conn.endheaders()
        if body:
            conn.send(body)
        response = conn.getresponse()
        return response.status, response.read(1 << 20)
    except (ConnectionError, http.client.HTTPException, TimeoutError):
        return 0, b""  # the server closed the connection: refused
    finally:
        conn.close()


# ----- the attacks ------------------------------------------------------------------------------------------------

def traversal_paths(secret: Path) -> Iterator[str]:
    absolute = secret.resolve().as_posix()
    ups = "../" * 12
    for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/gradio_api/proxy="):
        yield prefix + absolute
        yield prefix + ups + absolute.lstrip("/")
        yield prefix + "%2e%2e/" * 12 + absolute.lstrip("/")
        yield prefix + "..%2f" * 12 + absolute.lstrip("/")
        yield prefix + "/etc/passwd"
        yield prefix + ups + "etc/passwd"
        yield prefix + "..\\" * 12 + "etc\\passwd"
        yield prefix + "outputs/" + ups + absolute.lstrip("/")
    yield "/gradio_api/proxy=http://127.0.0.1:1/"


def attack_traversal(target: Target, report: Report, cookies: dict[str, str]) -> None:
    markers = _secret_markers(target.secret)
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    for path in traversal_paths(target.secret):
        status, body = _raw(target, "GET", path, {"Cookie": cookie} if cookie else {})
        report.check(not _leaks(body, markers),
                     "traversal", f"{path!r} served the secret ({status})")


def _file_events(config: dict[str, Any]) -> Iterator[tuple[int, list[Any], list[int]]]:
    """(fn index, default input values, positions of file inputs) of every event with a file input."""
    components = {c["id"]: c for c in config.get("components", [])}
    for index, dependency in enumerate(config.get("dependencies", [])):
        inputs = dependency.get("inputs", [])
        positions = [i for i, cid in enumerate(inputs) if components.get(cid, {}).get("type") in FILE_INPUT_TYPES]
        if positions and dependency.get("backend_fn"):
            defaults = [components.get(cid, {}).get("props", {}).get("value") for cid in inputs]
            yield dependency.get("id", index), defaults, positions


def _run_event(client: httpx.Client, fn_index: int, data: list[Any]) -> bytes:
    session = uuid.uuid4().hex
    joined = client.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index,
                                                          "session_hash": session})
    if joined.status_code != 200:
        return joined.content
    text = b""
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            text += line.encode() + b"\n"
            if '"process_completed"' in line or '"close_stream"' in line:
                break
    return text


def attack_file_inputs(target: Target, report: Report, client: httpx.Client) -> None:
    answer = client.get("/config")
    if answer.status_code != 200:  # behind a login we do not have: nothing to call
        report.check(answer.status_code in (401, 403), "file-input",
                     f"/config answered {answer.status_code} without a login")
        return
    markers = _secret_markers(target.secret)
    secret = str(target.secret.resolve())
    disguises: list[Any] = [{"path": secret, "meta": {"_type": "gradio.FileData"}}, {"path": secret},
                            {"path": secret, "url": f"/gradio_api/file={secret}", "orig_name": "x.png"}, secret]
    events = list(_file_events(answer.json()))
    report.check(bool(events), "file-input", "no Gradio event with a file input was found (nothing was attacked)")
    for fn_index, defaults, positions in events:
        for value in disguises:
            data = list(defaults)
            for position in positions:
                data[position] = value
            body = _run_event(client, fn_index, data)
            report.check(not _leaks(body, markers), "file-input",
                         f"event {fn_index} returned the secret for {value!r}")


def attack_cors(target: Target, report: Report, client: httpx.Client) -> None:
    headers = {"Origin": EVIL_ORIGIN, **({"Host": target.lan_host} if target.lan_host else {})}
    for path in ("/gradio_api/info", "/config", "/sdapi/v1/samplers", "/sdapi/v1/options"):
        simple = client.get(path, headers=headers)
        preflight = client.options(path, headers={**headers, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "content-type"})
        for kind, answer in (("GET", simple), ("preflight", preflight)):
            granted = answer.headers.get("access-control-allow-origin") in (EVIL_ORIGIN, "*")
            report.check(not granted and "access-control-allow-credentials" not in answer.headers,
                         "CORS", f"{kind} {path} granted {EVIL_ORIGIN}")


def _timed_post(client: httpx.Client, path: str, json: Any, headers: dict[str, str]) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = client.post(path, json=json, headers=headers).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.monotonic() - started


def attack_oversized(target: Target, report: Report, client: httpx.Client) -> None:
    auth = _basic(target.api_auth)
    declared = {"Content-Type": "application/json", "Content-Length": str(1 << 30), **auth}
    status, _ = _raw(target, "POST", "/sdapi/v1/txt2img", declared, b"{")
    report.check(status in (0, 401, 413), "oversized", f"a 1 GiB declared body got {status}")
    bomb = base64.b64encode(bomb_png(30000, 30000)).decode()
    small = {"prompt": "x", "steps": 1, "width": 64, "height": 64}
    cases = [
        ("/sdapi/v1/png-info", {"image": bomb}),
        ("/sdapi/v1/img2img", {**small, "init_images": [bomb]}),
        ("/sdapi/v1/extra-single-image", {"image": bomb, "upscaling_resize": 2}),
        ("/sdapi/v1/txt2img", {**small, "width": 100000, "height": 100000}),
        ("/sdapi/v1/txt2img", {**small, "n_iter": 100000, "batch_size": 64}),
        ("/sdapi/v1/txt2img", {**small, "script_name": "x/y/z plot", "script_args": [
            "Seed", "1-1000", [], "Steps", "1-1000", [], "CFG Scale", "1-1000", []]}),
        ("/sdapi/v1/extra-single-image", {"image": base64.b64encode(bomb_png(8, 8)).decode(),
                                          "upscaling_resize": float("1e308")}),
    ]
    for path, body in cases:
        status, seconds = _timed_post(client, path, body, auth)
        report.check(status in REFUSED and seconds < PROMPT_SECONDS,
                     "oversized", f"{path} {sorted(body)} got {status} after {seconds:.1f} s")


def still_serving(target: Target, report: Report, client: httpx.Client, generate: bool) -> None:
    auth = _basic(target.api_auth)
    report.check(client.get("/sdapi/v1/samplers", headers=auth).status_code == 200, "serving",
                 "the API stopped answering")
    if generate:
        answer = client.post("/sdapi/v1/txt2img", headers=auth, timeout=300,
                             json={"prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "seed": 1})
        report.check(answer.status_code == 200 and len(answer.json().get("images", [])) == 1,
                     "serving", f"a normal txt2img failed after the attacks ({answer.status_code})")


def run(target: Target, generate: bool = True) -> Report:
    """Every attack, first as a stranger, then (when credentials are given) as a logged-in user."""
    report = Report()
    identities = [Target(target.url, target.secret, lan_host=target.lan_host)]
    if target.ui_auth or target.api_auth:
        identities.append(target)
    for who in identities:
        client = _ui_client(who)
        try:
            attack_traversal(who, report, dict(client.cookies.items()))
            attack_file_inputs(who, report, client)
            attack_cors(who, report, client)
            attack_oversized(who, report, client)
        finally:
            client.close()
    client = _ui_client(target)
    try:
        still_serving(target, report, client, generate)
    finally:
        client.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--secret", type=Path, required=True, help="a file the server must never serve")
    parser.add_argument("--ui-auth")
    parser.add_argument("--api-auth")
    parser.add_argument("--lan-host", help="the Host header a LAN client sends, e.g. 192.168.1.20:7860")
    parser.add_argument("--no-generate", action="store_true", help="skip the final txt2img")
    args = parser.parse_args(argv)
    report = run(Target(args.url, args.secret, args.ui_auth, args.api_auth, args.lan_host), not args.no_generate)
    for failure in report.failures:
        print("FAIL", failure)  # noqa: T201
    print(f"{report.passed} passed, {len(report.failures)} failed")  # noqa: T201
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
