"""Loading rules without generating: manifests, hook order, A1111's disable flags, disabled_extensions in
config.json, the Available index (a file:// index, and the message when it cannot be read)."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.extensions.conftest import SAMPLES, extension_settings
from webui.core.errors import ValidationError
from webui.core.settings import ExtensionFlags
from webui.extensions.api import Manifest
from webui.extensions.manifest import manifest_from_table
from webui.extensions.ordering import hook_order


def test_manifest_fields_are_checked():
    manifest = manifest_from_table({"name": "a", "requirements": ["x>=1"], "after": ["b"]}, "folder")
    assert manifest.requirements == ("x>=1",) and manifest.after == ("b",) and manifest.entry == "main"
    with pytest.raises(ValidationError, match="list of strings"):
        manifest_from_table({"name": "a", "requirements": "x"}, "folder")
    with pytest.raises(ValidationError, match="name"):
        manifest_from_table({"name": "../escape"}, "folder")
    with pytest.raises(ValidationError, match="API version"):
        manifest_from_table({"name": "a", "api_version": 99}, "folder")


def test_hook_order_follows_before_and_after_then_names():
    manifests = [Manifest("c"), Manifest("a", after=("c",)), Manifest("b", before=("c",)), Manifest("d")]
    assert hook_order(manifests) == ["b", "c", "a", "d"]
    assert hook_order([Manifest("x", after=("y",)), Manifest("y", after=("x",))]) == ["x", "y"]  # a cycle


def _services(tmp_path, names=("sample-ext", "broken-hook"), **flags):
    from webui.services import build_services

    for name in names:
        shutil.copytree(SAMPLES / name, tmp_path / "extensions" / name, dirs_exist_ok=True)
    builtin = tmp_path / "builtin"
    if not builtin.exists():
        shutil.copytree(SAMPLES / "broken-hook", builtin / "builtin-one")
        text = (builtin / "builtin-one" / "extension.toml").read_text(encoding="utf-8")
        (builtin / "builtin-one" / "extension.toml").write_text(text.replace('"broken-hook"', '"builtin-one"'),
                                                                 encoding="utf-8")
    return build_services(extension_settings(tmp_path, extensions=ExtensionFlags(builtin_dir=builtin, **flags)))


def _states(services):
    return {info.name: (info.status, info.builtin) for info in services.extensions.extensions()}


@pytest.mark.parametrize(("flags", "expected"), [
    ({}, {"sample-ext": "active", "broken-hook": "active", "builtin-one": "active"}),
    ({"disable_extra": True}, {"sample-ext": "disabled", "broken-hook": "disabled", "builtin-one": "active"}),
    ({"disable_all": True}, {"sample-ext": "disabled", "broken-hook": "disabled", "builtin-one": "disabled"}),
])
def test_disable_flags_as_in_a1111(tmp_path, flags, expected):
    services = _services(tmp_path, **flags)
    try:
        states = _states(services)
        assert {name: state for name, (state, _) in states.items()} == expected
        assert states["builtin-one"][1] is True
    finally:
        services.runtime.shutdown()


def test_disabled_extensions_in_config_json_are_not_loaded(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"disabled_extensions": ["sample-ext"]}), encoding="utf-8")
    services = _services(tmp_path)
    try:
        assert _states(services)["sample-ext"][0] == "disabled"
        assert not any(name == "sample-ext" for name, _ in services.extensions.registrations())
    finally:
        services.runtime.shutdown()


def test_available_index_from_a_file_and_offline(tmp_path):
    services = _services(tmp_path, names=())
    try:
        index = tmp_path / "index.json"
        index.write_text(json.dumps({"extensions": [{"name": "One", "url": "https://example.invalid/one.git",
                                                     "description": "first", "tags": ["tab"]}]}), encoding="utf-8")
        services.runtime.options.update({"extensions_index_url": index.as_uri()})
        result = services.extensions.available()
        assert result.error == "" and [e.name for e in result.entries] == ["One"]
        services.runtime.options.update({"extensions_index_url": "http://127.0.0.1:9/index.json"})
        offline = services.extensions.available()
        assert offline.entries == () and "offline" in offline.error
    finally:
        services.runtime.shutdown()


def test_exposed_without_the_flag_refuses_and_with_it_allows(tmp_path):
    refused = extension_settings(tmp_path, host="0.0.0.0")
    assert "--enable-insecure-extension-access" in refused.extension_access_refused
    allowed = extension_settings(tmp_path, host="0.0.0.0",
                                 extensions=ExtensionFlags(insecure_access=True, builtin_dir=tmp_path))
    assert allowed.extension_access_refused == ""
    assert extension_settings(tmp_path).extension_access_refused == ""  # loopback
