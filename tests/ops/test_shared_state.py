"""Limits and caches shared across processes (issue 17.6): the rate limit in a real
Redis (one bucket for every process and machine), per process without it; the
supplier cache emptied everywhere at once by PostgreSQL NOTIFY."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from db.pg import connect_arguments
from gateway.limits import RateLimiter
from gateway.shared import RedisRateLimiter, rate_limiter
from settings import Environment, Settings
from tests.conftest import token_for
from tests.ops.conftest import REDIS_URL, ops_settings, running_app

QUERY = {"query": "{ products(first: 1) { nodes { productId } } }"}


async def test_two_processes_share_one_bucket_in_redis(redis_prefix: str) -> None:
    """Two limiters (two processes' worth) on the same Redis: together they allow
    the burst once, not twice; an unrelated client keeps its own bucket."""
    first = RedisRateLimiter(REDIS_URL, redis_prefix, rate=0.001, burst=5)
    second = RedisRateLimiter(REDIS_URL, redis_prefix, rate=0.001, burst=5)
    try:
        answers = [await (first if i % 2 else second).acquire("demo-shop") for i in range(8)]
        assert answers[:5] == [0.0] * 5
        assert all(wait > 0 for wait in answers[5:])
        assert await first.acquire("demo-portal") == 0.0
        assert first.errors == second.errors == 0
    finally:
        await first.close()
        await second.close()


async def test_the_redis_bucket_refills_at_the_rate(redis_prefix: str) -> None:
    limiter = RedisRateLimiter(REDIS_URL, redis_prefix, rate=50, burst=1)
    try:
        assert await limiter.acquire("c") == 0.0
        wait = await limiter.acquire("c")
        assert 0 < wait <= 1 / 50
        # Wait on the bucket itself (bounded), not a fixed sleep.
        for _ in range(200):
            if await limiter.acquire("c") == 0.0:
                break
            await asyncio.sleep(wait)
        else:
            pytest.fail("the bucket never refilled")
    finally:
        await limiter.close()


async def test_without_redis_each_process_limits_on_its_own() -> None:
    settings = Settings(environment=Environment.TEST, rate_limit_per_second=0.001,
                        rate_limit_burst=2)
    first, second = rate_limiter(settings), rate_limiter(settings)
    assert isinstance(first, RateLimiter)
    assert [await first.acquire("x") for _ in range(3)][:2] == [0.0, 0.0]
    assert await first.acquire("x") > 0
    assert await second.acquire("x") == 0.0  # its own bucket


async def test_an_unreachable_redis_falls_back_to_the_process_bucket() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", "unused", rate=0.001, burst=2)
    try:
        answers = [await limiter.acquire("c") for _ in range(3)]
        assert answers[:2] == [0.0, 0.0]
        assert answers[2] > 0
        assert limiter.errors == 3
    finally:
        await limiter.close()


async def test_the_shared_limit_holds_across_two_gateways(
    database: str, redis_prefix: str
) -> None:
    """Two whole gateways on one database and one Redis: the burst is spent once;
    the 429 carries Retry-After and the typed error."""
    settings = ops_settings(
        database, redis_url=REDIS_URL, redis_key_prefix=redis_prefix,
        rate_limit_per_second=0.01, rate_limit_burst=4,
    )
    headers = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"}
    async with running_app(settings) as one, running_app(settings) as two:
        statuses = []
        for i in range(6):
            response = await (one if i % 2 else two).post("/graphql", json=QUERY, headers=headers)
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
        refused = await one.post("/graphql", json=QUERY, headers=headers)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


@pytest.mark.postgres_only
async def test_a_role_change_takes_effect_in_every_gateway_at_once(
    postgres_database: str,
) -> None:
    """Both gateways cache the supplier for an hour; a role granted in the database
    (by anyone: here a plain connection) is seen by both as soon as the commit's
    NOTIFY arrives, not after the hour."""
    settings = ops_settings(postgres_database, supplier_cache_seconds=3600)
    headers = {"Authorization": f"Bearer {token_for('demo-shop', 'portal')}"}

    async def code(client: Any) -> str | None:
        body = (await client.post("/graphql", json=QUERY, headers=headers)).json()
        return body["errors"][0]["extensions"]["code"] if body.get("errors") else None

    async with running_app(settings) as one, running_app(settings) as two:
        for client in (one, two):
            invalidation = client.app.state.supplier_invalidation
            await asyncio.wait_for(invalidation.listening.wait(), 30)
            assert await code(client) == "FORBIDDEN"  # demo-shop is no portal (yet); cached
        connection = await asyncpg.connect(**connect_arguments(postgres_database))
        try:
            await connection.execute(
                "INSERT INTO supplier_role (supplier_id, role) "
                "SELECT id, 'portal' FROM supplier WHERE code = 'demo-shop'"
            )
        finally:
            await connection.close()
        for client in (one, two):
            invalidation = client.app.state.supplier_invalidation
            for _ in range(300):  # bounded wait for the notification itself
                if invalidation.invalidations:
                    break
                await asyncio.sleep(0.05)
            assert invalidation.invalidations >= 1
            assert await code(client) is None


def test_a_row_read_before_the_cache_was_emptied_is_not_kept() -> None:
    """A request that read a supplier while a change committed must not put the old
    row back after the change's NOTIFY emptied the cache."""
    from gateway.caches import SupplierCache

    cache = SupplierCache(3600)
    generation = cache.generation
    cache.clear()  # the NOTIFY of a change arrives while the request reads
    cache.put("demo-shop", (1, frozenset()), generation)
    assert cache.get("demo-shop") is None
    cache.put("demo-shop", (1, frozenset()), cache.generation)
    assert cache.get("demo-shop") == (1, frozenset())
