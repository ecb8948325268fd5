"""GraphiQL as the gateway serves it: the README's first query in the editor (in
place of strawberry's welcome text), and its scripts and styles loaded from a
configurable place, so that GraphiQL also works without internet access.

Strawberry's page loads React, GraphiQL and the explorer plugin from
`https://unpkg.com/<package>@<version>/<file>` with subresource-integrity hashes.
`Settings.graphiql_assets_url` replaces that prefix (an internal mirror with the
same layout); `Settings.graphiql_assets_dir` names a local folder in the same
layout (`make graphiql-assets` fills one from the npm registry) that the gateway
serves itself at `ASSETS_PATH`. The integrity hashes stay: the files are the
published ones, byte for byte.
"""

from __future__ import annotations

import re

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from settings import Settings

UPSTREAM = "https://unpkg.com"
ASSETS_PATH = "/graphiql-assets"
_EXAMPLE = re.compile(r"const EXAMPLE_QUERY = `.*?`;", re.S)


def assets_prefix(settings: Settings) -> str:
    """Where the page loads its scripts from."""
    if settings.graphiql_assets_dir:
        return ASSETS_PATH
    return settings.graphiql_assets_url.rstrip("/")


def render(html: str, settings: Settings, first_query: str) -> str:
    """Strawberry's GraphiQL page with our first query and asset location."""
    escaped = first_query.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
    html, found = _EXAMPLE.subn(lambda _: f"const EXAMPLE_QUERY = `{escaped}`;", html, count=1)
    if not found:  # strawberry changed its page: fail loudly in the tests, not silently
        raise RuntimeError("GraphiQL page without EXAMPLE_QUERY: check the strawberry upgrade")
    prefix = assets_prefix(settings)
    if prefix != UPSTREAM:
        html = html.replace(UPSTREAM + "/", prefix + "/")
    return html


def assets_route(settings: Settings) -> list[Mount]:
    """The static route for a local assets folder, when one is configured."""
    if not (settings.graphiql and settings.graphiql_assets_dir):
        return []
    return [Mount(ASSETS_PATH, app=StaticFiles(directory=settings.graphiql_assets_dir))]
