"""The UI receives only the services it uses: `build_ui` alone holds the `Services` container and hands out its
parts, and nothing in the UI reaches the engine objects behind the services (`runtime`).

Why read the source: a builder that takes the whole container works today and silently widens what a tab can
reach; the signatures are the contract, so the test checks them where they are written.
"""
from __future__ import annotations

import ast
from pathlib import Path

UI_DIR = Path(__file__).resolve().parents[2] / "webui" / "ui"
CONTAINER_HOLDER = UI_DIR / "app_ui.py"


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), filename=str(path))) for path in sorted(UI_DIR.rglob("*.py"))]


def _imports_container(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "webui.services"
               and any(alias.name == "Services" for alias in node.names) for node in ast.walk(tree))


def test_only_build_ui_takes_the_services_container():
    holders = [path.relative_to(UI_DIR).as_posix() for path, tree in _modules() if _imports_container(tree)]
    assert holders == [CONTAINER_HOLDER.relative_to(UI_DIR).as_posix()]
    tree = ast.parse(CONTAINER_HOLDER.read_text())
    takers = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
              and any(isinstance(arg.annotation, ast.Name) and arg.annotation.id == "Services"
                      or isinstance(arg.annotation, ast.Constant) and arg.annotation.value == "Services"
                      for arg in node.args.args)]
    assert sorted(takers) == ["build_ui", "generation_tab_services"]


def test_ui_never_touches_the_runtime():
    touching = [f"{path.relative_to(UI_DIR).as_posix()}:{node.lineno}" for path, tree in _modules()
                for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "runtime"]
    assert touching == []
