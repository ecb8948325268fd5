"""Per-process resources of activation on PostgreSQL: the plain asyncpg pool, the
group commit that registers clicks in batches and the cache of login schools and
products. Opened and closed in app.py's lifespan; the HTTP and websocket contexts
hand `group_commit` and `cache` to the resolvers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.pg import connect_arguments, create_pool
from db.reference_cache import ReferenceCache
from resolvers.clock import today
from services.group_commit import GroupCommit
from settings import Settings


@dataclass
class Activation:
    """The plain asyncpg pool, the group commit that registers clicks in batches and
    the cache of login schools and products (PostgreSQL only)."""

    pool: Any
    group_commit: GroupCommit
    cache: ReferenceCache

    @classmethod
    async def open(cls, settings: Settings, engine: Any) -> Activation | None:
        if engine is None or engine.dialect.name != "postgresql":
            return None
        pool = await create_pool(
            engine.url, min_size=1, max_size=settings.activation_batch_workers + 2
        )
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
