"""Imports run one way: the portal uses both apps, the gateway uses connections, and
connections knows nothing of the gateway or the portal."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# For each app, the project packages it must never import (at the top or inside a function).
FORBIDDEN = {
    "connections": {"mcp_gateway", "attio_portal"},
    "mcp_gateway": {"attio_portal"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations(app: str) -> list[str]:
    found = []
    for path in sorted((REPO / app).rglob("*.py")):
        for module in imported_modules(path):
            if module.split(".")[0] in FORBIDDEN[app]:
                found.append(f"{path.relative_to(REPO)} imports {module}")
    return found


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_app_imports_only_what_it_builds_on(app):
    assert violations(app) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from mcp_gateway.services import revoke_keys\n")
    assert "mcp_gateway.services" in imported_modules(sample)
