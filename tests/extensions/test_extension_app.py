"""Extensions in the whole app as mounted: the sample extension's tab, controls, setting, hooks and route through
gradio_client and HTTP; the Extensions tab and the API installing from a git repository made here (file:// URL);
and the refusals of an exposed server."""
from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import pytest
import requests
from gradio_client import Client
from PIL import Image

from app import build_app
from tests.conftest import ServerThread, free_port
from tests.extensions.conftest import data_dir_with_extensions, extension_settings
from webui.core.infotext import parse_infotext
from webui.core.settings import Credential, SecuritySettings

AUTH = ("ext-user", "ext-pass")
TINY = {"prompt": "a red circle", "steps": 2, "width": 32, "height": 32, "seed": 5, "sampler_name": "Euler a"}


def make_repo(root: Path, name: str, requirements: tuple[str, ...] = ()) -> Path:
    """A git repository holding a minimal extension named `name` (one commit)."""
    folder = root / "origins" / name
    folder.mkdir(parents=True)
    (folder / "extension.toml").write_text(
        f'[extension]\nname = "{name}"\nversion = "0.1.0"\ndescription = "Installed by a test."\n'
        f"requirements = {json.dumps(list(requirements))}\n", encoding="utf-8")
    (folder / "main.py").write_text("def setup(ext):\n    ext.infotext_fields(lambda request, index: {})\n",
                                    encoding="utf-8")
    commit(folder, "first")
    return folder


def commit(folder: Path, message: str) -> None:
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]
    if not (folder / ".git").exists():
        subprocess.run([*git, "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], cwd=folder, check=True)


def with_defaults(client: Client, endpoint: str, given: list) -> list:
    """`given`, then every later parameter's default (the extension's checkbox among them)."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][endpoint]["parameters"]
    return [*given, *(param.get("parameter_default") for param in params[len(given):])]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, tiny_checkpoints):
    """The app with --api --api-auth, the sample extensions installed, the tiny model loaded."""
    from webui.services import build_services

    data_dir = data_dir_with_extensions(tmp_path_factory.mktemp("ext-app"), tiny_checkpoints,
                                        ("sample-ext", "broken-import", "broken-hook"))
    security = SecuritySettings(api_auth=(Credential(*AUTH),))
    services = build_services(extension_settings(data_dir, security=security))
    services.models.load_startup_model().result()
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url, Client(server.url, verbose=False)
    services.runtime.shutdown()


def test_extensions_list_in_a1111_shape(app_server):
    _, url, _ = app_server
    answer = requests.get(f"{url}/sdapi/v1/extensions", auth=AUTH, timeout=30)
    assert answer.status_code == 200
    by_name = {item["name"]: item for item in answer.json()}
    assert set(by_name) >= {"sample-ext", "broken-import", "broken-hook"}
    assert set(by_name["sample-ext"]) == {"name", "remote", "branch", "commit_hash", "version", "commit_date",
                                          "enabled"}
    assert by_name["sample-ext"]["version"] == "1.2.0" and by_name["sample-ext"]["enabled"] is True


def test_extension_route_is_served_behind_the_api_auth(app_server):
    _, url, _ = app_server
    assert requests.get(f"{url}/ext/sample-ext/status", timeout=30).status_code == 401
    answer = requests.get(f"{url}/ext/sample-ext/status", auth=AUTH, timeout=30)
    assert answer.status_code == 200 and answer.json()["name"] == "sample-ext"


def test_api_alwayson_args_and_top_level_fields_reach_the_hooks(app_server):
    _, url, _ = app_server
    body = {**TINY, "sample_ext_note": "from the API",
            "alwayson_scripts": {"Sample-Ext": {"args": [False]}, "some other script": {"args": [1, 2]}}}
    answer = requests.post(f"{url}/sdapi/v1/txt2img", json=body, auth=AUTH, timeout=300)
    assert answer.status_code == 200, answer.text
    infotext = json.loads(answer.json()["info"])["infotexts"][0]
    parsed = parse_infotext(infotext)
    assert parsed.prompt == "a red circle"  # args [False]: the hook left the prompt alone
    assert parsed.params["Sample note"] == "from the API"
    plain = requests.post(f"{url}/sdapi/v1/txt2img", json=TINY, auth=AUTH, timeout=300).json()
    assert parse_infotext(json.loads(plain["info"])["infotexts"][0]).prompt == "a red circle, sample suffix"
    image = Image.open(io.BytesIO(base64.b64decode(plain["images"][0])))
    assert image.convert("RGB").getpixel((0, 0)) == (0, 255, 0)  # after_image ran before the image was sent


def test_ui_tab_controls_and_setting(app_server):
    services, _, client = app_server
    assert client.predict("hello", api_name="/sample_ext_echo") == "echo: hello"
    assert "Saved 1" in client.predict("custom words", api_name="/extension_settings_apply")
    config = json.loads(services.settings.paths.config_file.read_text(encoding="utf-8"))
    assert config["sample_ext_suffix"] == "custom words"
    # Generate through the UI: the extension's checkbox (default on) reaches its hook with the new setting
    given = ["a red circle", "", "Euler a", "Automatic", 2, 64, 64, 5, 9, 1, 1, 1]
    gallery, _, info, message = client.predict(*with_defaults(client, "/txt2img", given), api_name="/txt2img")
    assert "a red circle, custom words<br>" in info and "Sample ext: image 0" in info, message
    assert gallery and gallery[0]["caption"] == "Seed 9"
    # the generation that hit broken-hook (or any later one) completed; broken-hook is listed as failed
    _, table, failures = client.predict(api_name="/extensions_list")
    rows = {row[0]: row for row in table["data"]}
    assert rows["broken-hook"][7] == "failed (after_image hook)"
    assert rows["broken-import"][7] == "failed (import)"
    assert "ModuleNotFoundError" in failures and "exploded on purpose" in failures
    client.predict("sample suffix", api_name="/extension_settings_apply")


def test_install_from_a_git_url_through_the_tab_and_the_api(app_server, tmp_path):
    services, url, client = app_server
    origin = make_repo(tmp_path, "from-the-tab", requirements=("packaging",))
    message, name, listed = client.predict(origin.as_uri(), "", api_name="/extensions_install")
    assert "Installed 'from-the-tab'" in message and name == "from-the-tab"
    assert "`packaging`" in listed  # shown before anything is installed
    assert (services.settings.paths.extensions_dir / "from-the-tab" / "extension.toml").is_file()
    assert "pip finished" in client.predict("from-the-tab", api_name="/extensions_install_requirements")
    again, *_ = client.predict(origin.as_uri(), "", api_name="/extensions_install")
    assert "already exists" in again

    second = make_repo(tmp_path, "from-the-api")
    answer = requests.post(f"{url}/sdapi/v1/extensions/install", json={"url": second.as_uri()}, auth=AUTH,
                           timeout=120)
    assert answer.status_code == 200 and answer.json()["name"] == "from-the-api"
    listed = {item["name"]: item for item in requests.get(f"{url}/sdapi/v1/extensions", auth=AUTH,
                                                          timeout=30).json()}
    assert listed["from-the-api"]["remote"] == second.as_uri()
    assert len(listed["from-the-api"]["commit_hash"]) == 40
    bad = requests.post(f"{url}/sdapi/v1/extensions/install", json={"url": "--upload-pack=touch /tmp/x"},
                        auth=AUTH, timeout=30)
    assert bad.status_code == 422


def test_available_tab_reads_the_index_at_the_url_given(app_server, tmp_path):
    services, _, client = app_server
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"extensions": [{"name": "sample-ext", "url": "https://example.invalid/s.git"},
                                                {"name": "Other", "url": "https://example.invalid/other.git"}]}),
                     encoding="utf-8")
    message, table = client.predict(index.as_uri(), api_name="/extensions_available")
    assert message == "2 extensions in the index."
    assert [row[0] for row in table["data"]] == ["sample-ext", "Other"] and table["data"][0][4] == "yes"
    assert services.extensions.index_url() == index.as_uri()
    message, table = client.predict("http://127.0.0.1:9/index.json", api_name="/extensions_available")
    assert "offline" in message and table["data"] in ([], [["", "", "", "", ""]])


def test_updates_are_found_and_pulled(app_server, tmp_path):
    services = app_server[0]
    origin = make_repo(tmp_path, "updatable")
    services.extensions.install(origin.as_uri())
    (origin / "README.md").write_text("new\n", encoding="utf-8")
    commit(origin, "second")
    assert services.extensions.check_updates()["updatable"] == "1 commits behind"
    assert "Updated 'updatable'" in services.extensions.update("updatable")
    assert services.extensions.check_updates()["updatable"] == "up to date"


def test_disabling_is_saved_in_config_json(app_server):
    services, _, client = app_server
    names = ["broken-hook", "broken-import", "sample-ext"]  # the choices when the page was built
    client.predict(["broken-hook", "broken-import"], api_name="/extensions_apply")
    config = json.loads(services.settings.paths.config_file.read_text(encoding="utf-8"))
    assert config["disabled_extensions"] == ["sample-ext"]  # extensions installed since keep their state
    assert {i.name: i.enabled for i in services.extensions.extensions()}["sample-ext"] is False
    client.predict(names, api_name="/extensions_apply")
    assert json.loads(services.settings.paths.config_file.read_text(encoding="utf-8"))["disabled_extensions"] == []


@pytest.fixture(scope="module")
def exposed_server(tmp_path_factory, tiny_checkpoints):
    """An app bound as with --listen (0.0.0.0), without --enable-insecure-extension-access."""
    from webui.services import build_services

    data_dir = data_dir_with_extensions(tmp_path_factory.mktemp("ext-exposed"), tiny_checkpoints, ("sample-ext",))
    services = build_services(extension_settings(data_dir, host="0.0.0.0"))
    with ServerThread(build_app(services), free_port()) as server:
        yield services, server.url, Client(server.url, verbose=False)
    services.runtime.shutdown()


def test_exposed_server_refuses_installs_in_the_api_and_the_tab(exposed_server, tmp_path):
    services, url, client = exposed_server
    origin = make_repo(tmp_path, "refused")
    answer = requests.post(f"{url}/sdapi/v1/extensions/install", json={"url": origin.as_uri()}, timeout=60)
    assert answer.status_code == 403
    assert "--enable-insecure-extension-access" in answer.json()["detail"]
    message, *_ = client.predict(origin.as_uri(), "", api_name="/extensions_install")
    assert message.startswith("**Refused:**") and "--listen" in message
    _, _, _, note = client.predict(["sample-ext"], api_name="/extensions_apply")
    assert note.startswith("**Refused:**")
    assert not (services.settings.paths.extensions_dir / "refused").exists()
    message, _ = client.predict("file:///etc/passwd", api_name="/extensions_available")
    assert message.startswith("**Refused:**")
    assert requests.get(f"{url}/sdapi/v1/extensions", timeout=30).status_code == 200  # listing stays allowed


def test_api_runs_an_extension_script_by_name(app_server):
    _, url, _ = app_server
    body = {**TINY, "script_name": "sample repeat", "script_args": [2]}
    answer = requests.post(f"{url}/sdapi/v1/txt2img", json=body, auth=AUTH, timeout=300)
    assert answer.status_code == 200, answer.text
    infotexts = json.loads(answer.json()["info"])["infotexts"]
    assert len(infotexts) == 2  # the script ran n_iter=2 through the generation service (hooks included)
    assert all(parse_infotext(text).prompt == "a red circle, sample suffix" for text in infotexts)
    listed = requests.get(f"{url}/sdapi/v1/scripts", auth=AUTH, timeout=30).json()
    assert "sample repeat" in listed["txt2img"] and "sample repeat" in listed["img2img"]
    unknown = requests.post(f"{url}/sdapi/v1/txt2img", json={**TINY, "script_name": "no such script"}, auth=AUTH,
                            timeout=60)
    assert unknown.status_code == 422 and "sample repeat" in unknown.json()["detail"]


def test_ui_script_dropdown_runs_the_extension_script(app_server):
    _, _, client = app_server
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/txt2img"]["parameters"]
    values = with_defaults(client, "/txt2img", ["a red circle", "", "Euler a", "Automatic", 2, 64, 64, 5, 4, 1, 1, 1])
    labels = [param.get("label") for param in params]
    values[labels.index("Script")] = "Sample repeat"
    values[labels.index("Times")] = 2
    gallery, _, info, message = client.predict(*values, api_name="/txt2img")
    assert len(gallery) == 2, message
    assert "a red circle, sample suffix<br>" in info
