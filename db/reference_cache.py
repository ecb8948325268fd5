"""A per-process cache of reference data (a login school's identifier → the school;
a product code → the product and the sets that contain it) that PostgreSQL NOTIFY
invalidates in every gateway process.

Statement-level triggers on the tables it is read from (migration 0006) send
`NOTIFY ketenpoort_reference` when they change; the notification arrives when the
change commits, and each process then forgets everything it cached. The cache is
used only while its own LISTEN connection is up: when that connection is lost it
forgets everything and answers from the database until it is listening again. A
value read while a change was being committed is not kept (a generation count),
so a stale entry cannot outlive the notification that ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import asyncpg

log = logging.getLogger("ketenpoort.reference")

CHANNEL = "ketenpoort_reference"
#: The tables whose changes the triggers announce on CHANNEL.
TABLES = (
    "organisation",
    "organisation_identifier",
    "organisation_relation",
    "product",
    "product_component",
)

T = TypeVar("T")


class ReferenceCache:
    def __init__(
        self, connect_arguments: dict[str, Any], *, max_entries: int = 10_000, retry: float = 1.0
    ) -> None:
        self._arguments = connect_arguments
        self._max = max_entries
        self._retry = retry
        self._entries: dict[Hashable, Any] = {}
        self._generation = 0
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._listening = asyncio.Event()
        self._forgotten = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    @property
    def generation(self) -> int:
        """How often the cache forgot everything."""
        return self._generation

    async def ready(self) -> None:
        """Wait until the cache listens (and so is used)."""
        await self._listening.wait()

    async def forgotten(self, generation: int) -> None:
        """Wait until the cache forgot everything after `generation`."""
        while self._generation == generation:
            self._forgotten.clear()
            await self._forgotten.wait()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._close()

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value for `key`, else `load()` (kept while nothing changed)."""
        if self.listening and key in self._entries:
            return self._entries[key]  # type: ignore[no-any-return]
        generation = self._generation
        value = await load()
        if self.listening and generation == self._generation:
            if len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]  # the oldest
            self._entries[key] = value
        return value

    def forget(self, *_: Any) -> None:
        self._generation += 1
        self._entries.clear()
        self._forgotten.set()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    async def _listen(self) -> None:
        while True:
            try:
                connection = await asyncpg.connect(**self._arguments, timeout=10)
                connection.add_termination_listener(self._terminated)
                await connection.add_listener(CHANNEL, self.forget)
                self._connection = connection
                self._lost.clear()
                self.forget()
                self._listening.set()
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # retried: the gateway works without the cache
                log.warning("reference cache cannot listen: %s", error)
            self._listening.clear()
            self.forget()
            await self._close()
            await asyncio.sleep(self._retry)

    def _terminated(self, _connection: Any) -> None:
        self._listening.clear()
        self.forget()
        self._lost.set()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self._listening.clear()
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=2)
            except Exception:
                connection.terminate()
