"""`live/` (broker, streams, the websocket transport) sits above the schema and the
resolvers, beside `gateway/`: nothing below it imports it, and it takes what it
needs from the gateway (token verifier, rate limiter, caches) from the app, not by
importing `gateway/`. Checked on every import statement, those inside functions
included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.gateway.test_layering import ROOT, imported

BELOW = ("schema", "resolvers", "services", "db", "domain")
MODULES = sorted(path for folder in BELOW for path in (ROOT / folder).rglob("*.py"))
LIVE = sorted((ROOT / "live").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_below_live_imports_it(path: Path) -> None:
    assert {name for name in imported(path) if name.split(".")[0] == "live"} == set()


@pytest.mark.parametrize("path", LIVE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_live_imports_neither_the_gateway_nor_the_app(path: Path) -> None:
    assert {name for name in imported(path) if name.split(".")[0] in {"gateway", "app"}} == set()


def test_live_uses_no_private_name_of_strawberry() -> None:
    """Strawberry's public API only: no `_private` module or name is imported, and
    no class of it is subclassed (its handlers are not overridden)."""
    for path in LIVE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        strawberry_names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("strawberry"):
                parts = [*(node.module or "").split("."), *(a.name for a in node.names)]
                assert not any(part.startswith("_") for part in parts), (path, parts)
                strawberry_names.update(a.asname or a.name for a in node.names)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                assert not bases & strawberry_names, (path, node.name)
