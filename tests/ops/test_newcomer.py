"""A newcomer's first hour (issue 17.8): the domain reference inside the repository,
GraphiQL that works offline and opens on our first query, `make run` without the
dev extras, one vocabulary for RIO identifier schemes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

from app import FIRST_QUERY, create_app
from settings import Environment, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_points_inside_the_repository_for_the_domain() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    assert "docs/domain.md" in readme
    domain = (ROOT / "docs" / "domain.md").read_text()
    for needed in ("ENTITLED", "LINK_READY", "decision tree", "ECK iD", "VE_CODE", "| 42 |"):
        assert needed in domain, needed


def test_one_vocabulary_for_rio_schemes() -> None:
    """BRIN4/BRIN6 appear only beside the schema's scheme names OIE_CODE/VE_CODE."""
    for path in (ROOT / "README.md", ROOT / "schema.graphql", ROOT / "docs" / "domain.md"):
        text = path.read_text()
        for match in re.finditer(r"BRIN[46]", text):
            scheme = "OIE_CODE" if match.group() == "BRIN4" else "VE_CODE"
            around = text[max(0, match.start() - 20) : match.end() + 5]
            assert scheme in around, f"{path.name}: {around!r}"


async def _get(settings: Settings, path: str, **headers: str) -> httpx.Response:
    app = create_app(settings, sessionmaker=lambda: None)  # type: ignore[arg-type,return-value]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://g"
    ) as client:
        return await client.get(path, headers=headers)


async def test_graphiql_opens_on_our_first_query_without_strawberrys_welcome() -> None:
    page = await _get(Settings(environment=Environment.TEST), "/graphql", Accept="text/html")
    assert page.status_code == 200
    assert "query FirstQuery" in page.text
    assert "Welcome to GraphiQL" not in page.text
    example = re.search(r"const EXAMPLE_QUERY = `(.*?)`;", page.text, re.S)
    assert example is not None
    assert example.group(1) == FIRST_QUERY


async def test_graphiql_assets_from_a_configured_mirror() -> None:
    settings = Settings(
        environment=Environment.TEST, graphiql_assets_url="https://mirror.example/npm/"
    )
    page = await _get(settings, "/graphql", Accept="text/html")
    assert "https://unpkg.com" not in page.text
    assert 'src="https://mirror.example/npm/graphiql@3.8.3/graphiql.min.js"' in page.text
    assert "integrity=" in page.text  # the published files, byte for byte


async def test_graphiql_assets_served_from_a_local_folder(tmp_path: Path) -> None:
    script = tmp_path / "graphiql@3.8.3" / "graphiql.min.js"
    script.parent.mkdir()
    script.write_text("window.GraphiQL = {};")
    settings = Settings(environment=Environment.TEST, graphiql_assets_dir=str(tmp_path))
    page = await _get(settings, "/graphql", Accept="text/html")
    assert "unpkg.com" not in page.text
    assert 'src="/graphiql-assets/graphiql@3.8.3/graphiql.min.js"' in page.text
    served = await _get(settings, "/graphiql-assets/graphiql@3.8.3/graphiql.min.js")
    assert served.status_code == 200
    assert served.text == "window.GraphiQL = {};"
    missing = await _get(settings, "/graphiql-assets/react@18.2.0/umd/react.production.min.js")
    assert missing.status_code == 404


def _make_dry_run(target: str) -> str:
    return subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def test_make_run_installs_only_what_running_needs() -> None:
    run = _make_dry_run("run")
    assert "pip install --quiet -e ." in run
    assert "[dev]" not in run
    assert "[dev]" in _make_dry_run("test")


def test_every_setting_is_in_the_readmes_operating_section() -> None:
    readme = (ROOT / "README.md").read_text()
    operating = readme[readme.index("## Operating") : readme.index("## Layout")]
    missing = [
        name
        for name in Settings.model_fields
        if name != "database_url"
        and f"KETENPOORT_{name.upper()}" not in operating
        and f"`_{name.upper()}`" not in operating
        and f", `_{name.upper()}" not in operating
    ]
    assert missing == []
    assert "DATABASE_URL" in operating
