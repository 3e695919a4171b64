"""The complete example extension in docs/extensions.md, copied from the document, loads and works."""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import make_data_dir
from tests.extensions.conftest import extension_settings
from webui.core.infotext import parse_infotext
from webui.core.requests import GenerationRequest

DOC = Path(__file__).resolve().parents[2] / "docs" / "extensions.md"


def example_files() -> tuple[str, str]:
    """The manifest and main.py of the section "A complete small extension"."""
    section = DOC.read_text(encoding="utf-8").split("## A complete small extension", 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert toml and python
    return toml.group(1), python.group(1)


def test_the_documented_example_extension_works(tmp_path, tiny_checkpoints):
    from webui.services import build_services

    manifest, main = example_files()
    data_dir = make_data_dir(tmp_path, tiny_checkpoints, ("sd1",))
    folder = data_dir / "extensions" / "signature"
    folder.mkdir(parents=True)
    (folder / "extension.toml").write_text(manifest, encoding="utf-8")
    (folder / "main.py").write_text(main, encoding="utf-8")
    services = build_services(extension_settings(data_dir))
    try:
        assert [(i.name, i.status) for i in services.extensions.extensions()] == [("signature", "active")]
        services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
        result = services.generation.txt2img(GenerationRequest(prompt="a cat", steps=2, width=32, height=32,
                                                               seed=3, save_images=False))
        parsed = parse_infotext(result.images[0].infotext)
        assert parsed.prompt == "a cat, by me" and parsed.params["Signed"] == "yes"
        assert result.images[0].image.getpixel((0, 0)) == (255, 0, 0)
        names = {name for name, regs in services.extensions.registrations() if regs.tabs and regs.scripts
                 and regs.routes and regs.settings and regs.generation_controls}
        assert names == {"signature"}
    finally:
        services.runtime.shutdown()
