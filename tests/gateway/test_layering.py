"""The gateway sits above the schema and the resolvers: nothing below it imports
`gateway/` (what a resolver needs from the transport comes in the request
context). Checked on the import statements of every module, those inside
functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BELOW = ("schema", "resolvers", "services", "db", "domain")
MODULES = sorted(path for folder in BELOW for path in (ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_below_the_gateway_imports_it(path: Path) -> None:
    assert {name for name in imported(path) if name.split(".")[0] in {"gateway", "app"}} == set()
