"""Fixtures for the operations tests: the real app with its own lifespan (engine,
broker, caches) on a throwaway database, driven through httpx; a key prefix of its
own per test in the machine's Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from settings import Environment, Settings
from tests.conftest import BACKENDS, IN_CI, demo_database

REDIS_URL = os.environ.get("KETENPOORT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def ops_settings(url: str, **overrides: Any) -> Settings:
    return Settings(environment=Environment.TEST, database_url=url, **overrides)


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway as `create_app` builds it, its lifespan running (engine, broker,
    audit buffer, supplier invalidation), behind an httpx client."""
    from app import create_app

    app = create_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        )
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh migrated database with the demo (its URL), per test."""
    async with demo_database(request.param) as (url, _engine):
        yield url


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL backend not selected")
    async with demo_database("postgresql") as (url, _engine):
        yield url


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the real Redis; its keys deleted after."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc} (CI requires it)")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    prefix = f"ketenpoort-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
