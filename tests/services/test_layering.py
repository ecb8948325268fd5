"""Use cases sit between the resolvers and the store: `services/` imports neither
the GraphQL layer nor the transport (nor a web framework), and `db/` never imports
`services/`. Checked on every import statement, those inside functions included."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.test_layering import imported as module_imports

ROOT = Path(__file__).resolve().parents[2]
ABOVE_SERVICES = {"app", "gateway", "live", "resolvers", "schema", "strawberry", "starlette"}


def imported(path: Path) -> set[str]:
    """The top-level packages the module imports."""
    return {name.split(".")[0] for name in module_imports(path)}


@pytest.mark.parametrize("path", sorted((ROOT / "services").rglob("*.py")), ids=lambda p: p.name)
def test_a_use_case_imports_nothing_above_it(path: Path) -> None:
    assert imported(path) & ABOVE_SERVICES == set()


@pytest.mark.parametrize("path", sorted((ROOT / "db").rglob("*.py")), ids=lambda p: p.name)
def test_the_store_does_not_import_the_use_cases(path: Path) -> None:
    assert "services" not in imported(path)
