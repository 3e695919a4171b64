"""A1111 launch flags: the implemented ones change Settings; the others are accepted, never fatal."""
from __future__ import annotations

import pytest

import launch
from webui.core.errors import ValidationError


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
    ])
    assert {"--medvram", "--xformers", "--gradio-auth", "--lowvram"} <= set(settings.accepted_only_flags)
    assert "--precision" not in settings.accepted_only_flags


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
