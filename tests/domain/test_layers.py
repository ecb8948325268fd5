"""The folders form a line (README "Layout"): each imports only the ones below it.

    resolvers/api/ → resolvers/ → schema/ → services/ → db/ → domain/

The root fields (`resolvers/api/`) call the resolvers; the resolvers decode input,
call a use case or load through `db/`, and build the `schema/` types; the types
know neither resolvers nor SQL (nested fields load through the request's
loaders); the use cases (`services/`) use `db/` and `domain/`; `db/` stores and
queries; `domain/` decides. Checked on every import statement, those inside
functions and under TYPE_CHECKING included; and `schema/` is also imported in a
fresh interpreter, which must not load SQLAlchemy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.test_layering import imported

ROOT = Path(__file__).resolve().parents[2]

#: Top to bottom. A module belongs to the first layer whose folder holds it.
LINE = ("resolvers/api", "resolvers", "schema", "services", "db", "domain")


def layer_of_path(path: Path) -> str:
    relative = path.relative_to(ROOT).as_posix()
    return next(layer for layer in LINE if relative.startswith(layer + "/"))


def layer_of_module(name: str) -> str | None:
    """The layer an imported module belongs to; None outside the line (libraries,
    gateway, live, …)."""
    as_path = name.replace(".", "/")
    return next((layer for layer in LINE if (as_path + "/").startswith(layer + "/")), None)


MODULES = sorted(path for layer in LINE for path in (ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_folder_imports_only_the_folders_below_it(path: Path) -> None:
    own = LINE.index(layer_of_path(path))
    upwards = {
        name
        for name in imported(path)
        if (layer := layer_of_module(name)) is not None and LINE.index(layer) < own
    }
    assert upwards == set()


@pytest.mark.parametrize("path", sorted((ROOT / "db").rglob("*.py")), ids=lambda p: p.name)
def test_the_store_imports_neither_use_cases_nor_schema(path: Path) -> None:
    assert {name.split(".")[0] for name in imported(path)} & {"services", "schema"} == set()


@pytest.mark.parametrize("path", sorted((ROOT / "schema").rglob("*.py")), ids=lambda p: p.name)
def test_the_schema_imports_no_sqlalchemy(path: Path) -> None:
    assert {name.split(".")[0] for name in imported(path)} & {"sqlalchemy", "asyncpg"} == set()


def test_importing_the_schema_loads_no_sqlalchemy_resolvers_or_use_cases() -> None:
    names = [f"schema.{p.stem}" for p in sorted((ROOT / "schema").glob("*.py"))]
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert loaded & {"sqlalchemy", "asyncpg", "resolvers", "services", "db"} == set()


def test_the_line_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a schema module importing a resolver is upward."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from resolvers import delivery\n", encoding="utf-8")
    names = imported(module)
    assert {layer_of_module(name) for name in names} == {"resolvers"}
    assert LINE.index("resolvers") < LINE.index("schema")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_on_the_line_imports_what_sits_above_it(path: Path) -> None:
    above = {"app", "gateway", "live", "compiler", "push", "cli"}
    assert {name.split(".")[0] for name in imported(path)} & above == set()
