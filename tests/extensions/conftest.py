"""Apps with the sample extensions (tests/extensions/samples) installed in their data folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import make_data_dir, make_settings

SAMPLES = Path(__file__).parent / "samples"


def data_dir_with_extensions(root: Path, checkpoints: dict[str, Path], names: tuple[str, ...]) -> Path:
    """A data folder with the tiny SD1 model and copies of the named sample extensions in extensions/."""
    data_dir = make_data_dir(root, checkpoints, ("sd1",))
    for name in names:
        shutil.copytree(SAMPLES / name, data_dir / "extensions" / name)
    return data_dir


def extension_settings(data_dir: Path, **overrides):
    """Settings whose built-in extensions folder is empty: these tests see only the samples they installed."""
    from webui.core.settings import ExtensionFlags

    builtin = data_dir / "no-builtin-extensions"
    builtin.mkdir(exist_ok=True)
    flags = overrides.pop("extensions", None) or ExtensionFlags(builtin_dir=builtin)
    return make_settings(data_dir, extensions=flags, **overrides)


@pytest.fixture(scope="module")
def extension_services(tmp_path_factory, tiny_checkpoints):
    """Services with sample-ext, broken-import and broken-hook installed, the tiny SD1 model selected."""
    from webui.services import build_services

    data_dir = data_dir_with_extensions(tmp_path_factory.mktemp("ext-data"), tiny_checkpoints,
                                        ("sample-ext", "broken-import", "broken-hook"))
    services = build_services(extension_settings(data_dir))
    services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
    yield services
    services.runtime.shutdown()
