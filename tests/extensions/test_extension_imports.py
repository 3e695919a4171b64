"""Extensions may import only `webui.extensions.api` from the app (checked with `ast`, since `extensions/` and
`extensions-builtin/` are folders of extension packages, not importable packages import-linter could read)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = "webui.extensions.api"
EXTENSION_ROOTS = (ROOT / "extensions", ROOT / "extensions-builtin", Path(__file__).parent / "samples")


def forbidden_imports(source: str) -> list[str]:
    """Every `webui...` module imported by `source` other than `webui.extensions.api` (absolute imports only:
    a relative import stays inside the extension)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "webui":
            names += [f"webui.{alias.name}" for alias in node.names]  # `from webui import extensions`
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [name for name in names if (name == "webui" or name.startswith("webui.")) and name != ALLOWED]


def test_the_checker_catches_other_webui_imports():
    assert forbidden_imports("from webui.extensions.api import ExtensionContext\nimport gradio") == []
    assert forbidden_imports("import webui.core.requests") == ["webui.core.requests"]
    assert forbidden_imports("from webui.services import Services") == ["webui.services"]
    assert forbidden_imports("from webui import extensions") == ["webui.extensions"]
    assert forbidden_imports("from .helpers import marked") == []


def test_every_extension_imports_only_the_extension_api():
    files = [path for root in EXTENSION_ROOTS if root.is_dir() for path in sorted(root.rglob("*.py"))]
    assert files  # the samples at least
    problems = {str(path.relative_to(ROOT)): bad for path in files
                if (bad := forbidden_imports(path.read_text(encoding="utf-8")))}
    assert problems == {}
