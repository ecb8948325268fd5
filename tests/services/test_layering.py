"""Use cases sit between the resolvers and the store: `services/` imports neither
the GraphQL layer nor the transport (nor a web framework), and `db/` never imports
`services/`. Checked on every import statement, those inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABOVE_SERVICES = {"app", "gateway", "live", "resolvers", "schema", "strawberry", "starlette"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "services").rglob("*.py")), ids=lambda p: p.name)
def test_a_use_case_imports_nothing_above_it(path: Path) -> None:
    assert imported(path) & ABOVE_SERVICES == set()


@pytest.mark.parametrize("path", sorted((ROOT / "db").rglob("*.py")), ids=lambda p: p.name)
def test_the_store_does_not_import_the_use_cases(path: Path) -> None:
    assert "services" not in imported(path)
