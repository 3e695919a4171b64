"""The client path policy: relative to the data folder, never out of it (by `..`, an absolute path, a backslash,
`~`, NUL or a link), absolute paths only inside an allowed folder; the hide flag follows the bind address."""
from __future__ import annotations

import os

import pytest

import launch
from tests.conftest import make_settings
from webui.core.path_policy import PathNotAllowedError, PathPolicy
from webui.core.settings import SecuritySettings


@pytest.fixture()
def policy(tmp_path):
    data = tmp_path / "data"
    (data / "outputs").mkdir(parents=True)
    (tmp_path / "allowed").mkdir()
    settings = make_settings(data, security=SecuritySettings(allowed_paths=(tmp_path / "allowed",)))
    return PathPolicy.from_settings(settings)


def test_relative_paths_are_inside_the_data_folder(policy):
    assert policy.resolve("outputs/new/folder", "Folder") == policy.data_dir / "outputs" / "new" / "folder"
    assert policy.resolve("  ./a/./b  ", "Folder") == policy.data_dir / "a" / "b"
    assert policy.resolve("trailing/", "Folder") == policy.data_dir / "trailing"


@pytest.mark.parametrize(("value", "reason"), [
    ("../../../tmp/evil", "contains '..'"),
    ("outputs/../../x", "contains '..'"),
    ("/etc", "is outside the data folder"),
    ("~/secrets", "is not a path on this server"),
    ("C:/Windows", "is not a path on this server"),
    ("outputs\\..\\x", "backslash"),
    ("a\x00b", "NUL"),
    ("   ", "is empty"),
])
def test_escapes_are_refused_with_a_reason(policy, value, reason):
    with pytest.raises(PathNotAllowedError, match="Output folder") as caught:
        policy.resolve(value, "Output folder")
    assert reason in str(caught.value)


def test_a_link_out_of_the_data_folder_is_refused(policy, tmp_path):
    os.symlink(tmp_path, policy.data_dir / "escape")
    with pytest.raises(PathNotAllowedError, match="through a link"):
        policy.resolve("escape/anything", "Folder")
    os.symlink(policy.data_dir / "outputs", policy.data_dir / "inside")
    assert policy.resolve("inside/x", "Folder") == policy.data_dir / "outputs" / "x"


def test_absolute_paths_only_inside_allowed_folders(policy, tmp_path):
    assert policy.resolve(str(tmp_path / "allowed" / "sets"), "Folder") == (tmp_path / "allowed" / "sets").resolve()
    assert policy.resolve(str(policy.data_dir / "outputs"), "Folder") == policy.data_dir / "outputs"
    with pytest.raises(PathNotAllowedError, match="--gradio-allowed-path"):
        policy.resolve(str(tmp_path / "other"), "Folder")
    models = tmp_path / "models"
    assert policy.with_roots((models,)).resolve(str(models / "m.safetensors"), "Base model") == \
        models / "m.safetensors"


def test_public_paths_never_show_the_server_layout(policy, tmp_path):
    assert policy.public_path(policy.data_dir / "models" / "Lora" / "a.safetensors") == "models/Lora/a.safetensors"
    ckpt = tmp_path / "big-disk" / "checkpoints"
    assert policy.public_path(ckpt / "sub" / "m.safetensors", (ckpt,)) == "checkpoints/sub/m.safetensors"
    assert policy.public_path(tmp_path / "elsewhere" / "x.pt") == "x.pt"


def test_folder_fields_hidden_when_exposed(tmp_path, policy):
    assert not make_settings(tmp_path).hide_dir_config
    assert make_settings(tmp_path, host="0.0.0.0").hide_dir_config
    assert make_settings(tmp_path, security=SecuritySettings(hide_ui_dir_config=True)).hide_dir_config
    assert not make_settings(tmp_path, host="0.0.0.0",
                             security=SecuritySettings(hide_ui_dir_config=False)).hide_dir_config
    policy.refuse_if_hidden("Anything")  # a loopback server: no error
    hidden = PathPolicy.from_settings(make_settings(tmp_path, host="192.0.2.4"))
    with pytest.raises(PathNotAllowedError, match="--enable-insecure-extension-access"):
        hidden.refuse_if_hidden("Batch from directory")


@pytest.mark.parametrize(("flags", "hidden"), [
    ([], False),
    (["--listen"], True),
    (["--server-name", "studio.lan"], True),
    (["--listen", "--enable-insecure-extension-access"], False),
    (["--hide-ui-dir-config"], True),
    (["--listen", "--hide-ui-dir-config", "--enable-insecure-extension-access"], True),
    (["--share"], True),
])
def test_launch_flags_decide_hiding(tmp_path, flags, hidden):
    settings = launch.build_settings(["--data-dir", str(tmp_path), "--use-cpu", "all", *flags])
    assert settings.hide_dir_config is hidden
    assert not {"--hide-ui-dir-config", "--enable-insecure-extension-access"} & set(settings.accepted_only_flags)
