"""The property test over a generated data set (bench/generate.py, small): many
schools with every consent variant, a board, shops, publishers, a portal and a
dashboard provider, thousands of entitlements and licences, dashboard summaries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bench.generate import Size, generate
from db.engine import create_engine
from db.migrate import upgrade_connection
from tests.compiler.test_property import queries, run_as_every_role
from tests.conftest import (
    GraphQLClient,
    _create_postgres_database,
    _drop_postgres_database,
)

SIZE = Size(schools=10, pupils=400, entitlements=1_000, licences=1_500)

CALLERS = {
    "dashboard": ("bench-dashboard", "dashboard"),
    "portal": ("bench-portal", "portal"),
    "seller": ("bench-shop-1", "seller"),
    "licensor": ("bench-publisher-1", "licensor"),
    "school": ("bench-school-admin", "school"),
    "operator": ("operator", "operator"),
}


@pytest.fixture(scope="module")
async def generated(backend: Any) -> AsyncIterator[tuple[Any, Any]]:
    if not backend.is_postgres:
        pytest.skip("compiled reads run on PostgreSQL")
    name, url = await _create_postgres_database()
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(upgrade_connection)
            await conn.commit()
        data = await generate(url, SIZE, log=lambda text: None)
        yield engine, data
    finally:
        await engine.dispose()
        await _drop_postgres_database(name)


@pytest.mark.slow
async def test_random_queries_on_a_generated_data_set(generated: tuple[Any, Any]) -> None:
    engine, data = generated
    schools = data.school_rios
    arguments = {
        "entitlements": [
            "{first: 25}",
            *(f'{{first: 10, filter: {{school: {{value: "{rio}"}}}}}}' for rio in schools[:4]),
            f'{{filter: {{school: {{value: "{schools[9]}"}}, status: [ENDED, LINK_READY]}}}}',
        ],
        "licences": [
            "{first: 20}",
            *(f'{{first: 10, filter: {{school: {{value: "{rio}"}}}}}}' for rio in schools[:3]),
        ],
        "dashboard": [
            f'{{board: {{value: "{data.board_rio}"}}}}',
            "{}",
        ],
        "organisations": ["{first: 20}", f'{{filter: {{board: {{value: "{data.board_rio}"}}}}}}'],
        "products": ["{first: 20}"],
        "entitlement": ['{id: "1"}', '{id: "500"}', '{id: "999"}'],
    }
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
        try:
            await run_as_every_role(GraphQLClient(session), queries(arguments), CALLERS, schools[0])
        finally:
            await session.close()
            await outer.rollback()
