"""The domain core imports no web, GraphQL or database library (STYLE.md, Cosmic Python).

Two checks: the import statements of every ``domain/*.py`` (what a reviewer sees),
and ``sys.modules`` after importing the whole package in a fresh interpreter
(what a module pulls in indirectly, through another project package).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
FORBIDDEN = frozenset({"strawberry", "starlette", "sqlalchemy", "asyncpg"})
MODULES = sorted(DOMAIN.glob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_domain_module_imports_no_framework_or_database_library(path: Path) -> None:
    assert _imported_roots(path) & FORBIDDEN == set()


def test_importing_the_domain_pulls_in_no_framework_or_database_library() -> None:
    names = [f"domain.{p.stem}" for p in MODULES if p.stem != "__init__"]
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=DOMAIN.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(json.loads(result.stdout)) & FORBIDDEN == set()
