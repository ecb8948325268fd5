"""Plain asyncpg on PostgreSQL, beside SQLAlchemy, for the paths where SQLAlchemy's
per-statement work is most of the cost: compiled reads and the activation click.

`connect_arguments` turns the gateway's SQLAlchemy URL into asyncpg's arguments
(one source for the pool, the live broker's LISTEN connection and tests).
`create_pool` opens a pool whose connections prepare each statement once
(asyncpg's statement cache) and are handed back without asyncpg's reset round
trip: the paths that use it leave no session state behind (no SET, LISTEN,
cursor or advisory lock outlives a checkout). A connection handed back inside a
transaction (an interrupted request) is rolled back first.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url


def connect_arguments(url: str | URL) -> dict[str, Any]:
    """asyncpg's keyword arguments for a `postgresql+asyncpg://` URL."""
    parsed = make_url(url) if isinstance(url, str) else url
    arguments: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
    }
    return {name: value for name, value in arguments.items() if value is not None}


async def _init(connection: asyncpg.Connection) -> None:
    # json/jsonb as Python values where a path asks for decoded rows; the compiled
    # read path selects `::text` and passes PostgreSQL's text on untouched.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _reset(connection: asyncpg.Connection) -> None:
    if connection.is_in_transaction():
        # Only an interrupted request leaves one open.
        await connection.execute("ROLLBACK")


#: asyncpg caches (prepares once per connection) only statements up to 15 KiB by
#: default; a compiled read of a rich selection is larger (a 100-row page with
#: nested lists: 18 KB) and was parsed and planned again on every request.
MAX_CACHED_STATEMENT = 256 * 1024


async def create_pool(url: str | URL, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        **connect_arguments(url),
        min_size=min_size,
        max_size=max_size,
        init=_init,
        reset=_reset,
        max_cacheable_statement_size=MAX_CACHED_STATEMENT,
    )
