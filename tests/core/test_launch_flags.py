"""A1111 launch flags: the implemented ones change Settings; the others are accepted, never fatal."""
from __future__ import annotations

import pytest

import launch
from webui.core.errors import ValidationError
from webui.core.settings import MemoryFlags, parse_credentials


def test_defaults_bind_loopback(tmp_path):
    settings = launch.build_settings(["--data-dir", str(tmp_path), "--use-cpu", "all"])
    assert settings.host == "127.0.0.1"
    assert settings.port == 7860
    assert settings.device == "cpu"
    assert settings.paths.ckpt_dir == (tmp_path / "models" / "Stable-diffusion").resolve()
    assert settings.paths.outputs_dir == (tmp_path / "outputs").resolve()


def test_network_and_path_flags(tmp_path):
    settings = launch.build_settings([
        "--data-dir", str(tmp_path), "--listen", "--port", "7861", "--api", "--ckpt-dir", str(tmp_path / "ck"),
        "--vae-dir", str(tmp_path / "v"), "--models-dir", str(tmp_path / "m"), "--theme", "dark",
        "--use-cpu", "all", "--ckpt", str(tmp_path / "x.safetensors"),
    ])
    assert settings.host == "0.0.0.0"
    assert settings.port == 7861
    assert settings.api
    assert (tmp_path / "ck").resolve() in settings.paths.ckpt_dirs
    assert settings.paths.vae_dir == (tmp_path / "v").resolve()
    assert settings.paths.lora_dir == (tmp_path / "m" / "Lora").resolve()
    assert settings.theme == "dark"
    assert settings.ckpt == tmp_path / "x.safetensors"


def test_server_name_wins_over_listen(tmp_path):
    settings = launch.build_settings(["--data-dir", str(tmp_path), "--listen", "--server-name", "192.0.2.1"])
    assert settings.host == "192.0.2.1"


def test_known_a1111_flags_are_accepted_and_reported(tmp_path):
    settings = launch.build_settings([
        "--data-dir", str(tmp_path), "--medvram", "--xformers", "--gradio-auth", "u:p", "--lowvram",
        "--opt-sdp-attention", "--no-half-vae", "--enable-insecure-extension-access", "--precision", "full",
        "--share", "--opt-sub-quad-attention",
    ])
    assert {"--share", "--opt-sub-quad-attention"} <= set(settings.accepted_only_flags)
    implemented = {"--medvram", "--xformers", "--gradio-auth", "--lowvram", "--opt-sdp-attention", "--no-half-vae",
                   "--precision", "--enable-insecure-extension-access"}
    assert not implemented & set(settings.accepted_only_flags)


def test_precision_flags(tmp_path):
    """`auto` unless --no-half / --precision full force float32 (the CPU fast path, webui/core/precision.py)."""
    base = ["--data-dir", str(tmp_path), "--use-cpu", "all"]
    assert launch.build_settings(base).cpu_precision == "auto"
    assert launch.build_settings([*base, "--no-half"]).cpu_precision == "float32"
    assert launch.build_settings([*base, "--precision", "full"]).cpu_precision == "float32"
    assert launch.build_settings([*base, "--cpu-precision", "bfloat16"]).cpu_precision == "bfloat16"


def test_memory_flags_reach_settings(tmp_path):
    settings = launch.build_settings([
        "--data-dir", str(tmp_path), "--use-cpu", "all", "--medvram", "--medvram-sdxl", "--lowvram", "--no-half-vae",
        "--upcast-sampling", "--xformers", "--opt-sdp-attention", "--opt-split-attention",
        "--disable-opt-split-attention", "--opt-channelslast", "--compile", "--compile-backend", "aot_eager",
    ])
    assert settings.memory == MemoryFlags(True, True, True, True, True, True, True, True, True, True, True,
                                          "aot_eager")
    assert set(settings.memory.given()) == {"--medvram", "--medvram-sdxl", "--lowvram", "--no-half-vae",
                                            "--upcast-sampling", "--xformers", "--opt-sdp-attention",
                                            "--opt-split-attention", "--disable-opt-split-attention",
                                            "--opt-channelslast", "--compile"}
    assert launch.build_settings(["--data-dir", str(tmp_path)]).memory == MemoryFlags()


def test_device_id_selects_the_gpu(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert launch.build_settings(["--data-dir", str(tmp_path), "--device-id", "1"]).device == "cuda:1"
    assert launch.build_settings(["--data-dir", str(tmp_path)]).device == "cuda"
    assert launch.build_settings(["--data-dir", str(tmp_path), "--use-cpu", "all", "--device-id", "1"]).device == "cpu"
    with pytest.raises(ValidationError, match="--device-id"):
        launch.build_settings(["--data-dir", str(tmp_path), "--device-id", "first"])


def test_network_security_flags(tmp_path):
    auth_file = tmp_path / "auth.txt"
    auth_file.write_text("carol:c1,dave:d:2\n\n erin:e3 \n")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_text("k")
    cert.write_text("c")
    settings = launch.build_settings([
        "--data-dir", str(tmp_path), "--gradio-auth", "alice:a1,bob:b2", "--gradio-auth-path", str(auth_file),
        "--api-auth", "api:secret", "--tls-keyfile", str(key), "--tls-certfile", str(cert),
        "--cors-allow-origins", "https://a.example, https://b.example", "--cors-allow-origins-regex", r"https://.*\.c",
        "--gradio-allowed-path", str(tmp_path / "x"), "--gradio-allowed-path", str(tmp_path / "y"),
        "--timeout-keep-alive", "5",
    ])
    security = settings.security
    assert [(c.user, c.password) for c in security.gradio_auth] == [
        ("alice", "a1"), ("bob", "b2"), ("carol", "c1"), ("dave", "d:2"), ("erin", "e3")]
    assert [(c.user, c.password) for c in security.api_auth] == [("api", "secret")]
    assert security.tls and security.tls_keyfile == key.resolve() and settings.scheme == "https"
    assert security.cors_allow_origins == ("https://a.example", "https://b.example")
    assert security.cors_allow_origins_regex == r"https://.*\.c"
    assert security.allowed_paths == ((tmp_path / "x").resolve(), (tmp_path / "y").resolve())
    assert security.timeout_keep_alive == 5
    assert "secret" not in repr(settings) and "a1" not in repr(settings)
    flags = settings.public_flags()
    assert flags["gradio_auth"] == "<hidden>" and flags["api_auth"] == "<hidden>"
    assert flags["medvram"] is False and flags["port"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--gradio-auth", "nopassword"], "user:password"),
    (["--api-auth", ":pw"], "user name"),
    (["--gradio-auth-path", "/nonexistent/auth.txt"], "cannot read"),
    (["--tls-keyfile", "/nonexistent/key.pem", "--tls-certfile", "/nonexistent/cert.pem"], "no such file"),
    (["--timeout-keep-alive", "0"], "timeout-keep-alive"),
])
def test_bad_security_flags_stop_the_launch_with_a_message(tmp_path, argv, message):
    with pytest.raises(ValidationError, match=message):
        launch.build_settings(["--data-dir", str(tmp_path), *argv])


def test_tls_needs_both_files(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("k")
    with pytest.raises(ValidationError, match="together"):
        launch.build_settings(["--data-dir", str(tmp_path), "--tls-keyfile", str(key)])


def test_nowebui_serves_on_a1111s_api_port(tmp_path):
    settings = launch.build_settings(["--data-dir", str(tmp_path), "--nowebui"])
    assert settings.nowebui and settings.api and settings.port == 7861
    assert launch.build_settings(["--data-dir", str(tmp_path), "--nowebui", "--port", "9000"]).port == 9000


def test_parse_credentials():
    creds = parse_credentials("a:1, b:2\nc:3:4,,", "--gradio-auth")
    assert [(c.user, c.password) for c in creds] == [("a", "1"), ("b", "2"), ("c", "3:4")]
    assert parse_credentials("", "--api-auth") == ()


def test_unknown_flags_never_crash(tmp_path):
    settings = launch.build_settings(["--data-dir", str(tmp_path), "--some-future-flag", "--another=3"])
    assert "--some-future-flag" in settings.unknown_flags


def test_bad_port_is_a_clear_error(tmp_path):
    with pytest.raises(ValidationError, match="--port"):
        launch.build_settings(["--data-dir", str(tmp_path), "--port", "70000"])


def test_missing_requirements_detects_absent_package(tmp_path):
    req = tmp_path / "r.txt"
    req.write_text("pytest==0.0.1\nsurely-not-installed-pkg==1.0\n# comment\n")
    assert launch.missing_requirements(req) == ["surely-not-installed-pkg==1.0"]
