"""Per-process resources of activation on PostgreSQL: plain asyncpg connections,
the group commit that registers clicks in batches and the cache of login schools and
products. Opened and closed in app.py's lifespan; the HTTP and websocket contexts
hand `group_commit` and `cache` to the resolvers.

One pool per process: the plain asyncpg connections are those of SQLAlchemy's
engine (`EnginePool`), checked out for a batch and used through asyncpg directly
(its statement cache prepares each statement once per connection), so activation
opens no second pool beside the engine's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from db.pg import connect_arguments
from db.reference_cache import ReferenceCache
from resolvers.clock import today
from services.group_commit import GroupCommit
from settings import Settings


class EnginePool:
    """`acquire()` as asyncpg's pool offers it, out of the engine's pool: the asyncpg
    connection under a SQLAlchemy connection. SQLAlchemy has begun nothing on it, so
    handing it back costs no round trip; one left inside a transaction (a cancelled
    batch) is rolled back, and one that cannot be is discarded."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            try:
                yield driver
            finally:
                if driver.is_closed() or driver.is_in_transaction():
                    try:
                        await driver.execute("ROLLBACK")
                    except BaseException as error:
                        # Never back into the pool inside a transaction.
                        await connection.invalidate()
                        if not isinstance(error, Exception):
                            raise

    async def close(self) -> None:
        return None  # the engine's, closed with the engine


@dataclass
class Activation:
    """The asyncpg connections (the engine's), the group commit that registers clicks
    in batches and the cache of login schools and products (PostgreSQL only)."""

    pool: EnginePool
    group_commit: GroupCommit
    cache: ReferenceCache

    @classmethod
    async def open(cls, settings: Settings, engine: Any) -> Activation | None:
        if engine is None or engine.dialect.name != "postgresql":
            return None
        pool = EnginePool(engine)
        group_commit = GroupCommit.configured(pool, today, settings)
        cache = ReferenceCache(
            connect_arguments(engine.url), max_entries=settings.reference_cache_size
        )
        await group_commit.start()
        await cache.start()
        return cls(pool, group_commit, cache)

    async def close(self) -> None:
        await self.group_commit.stop()
        await self.cache.stop()
        await self.pool.close()
