"""Per-process helpers that take work off every request: a short-lived cache of
the supplier registry (a supplier's id, roles and, for a school account, the
schools it speaks for: `db.suppliers.registration`), and a buffer that writes
read-audit rows in batches.

Both trade a little freshness for a lot of throughput, within limits a school
can accept: a supplier whose roles change is seen with its new roles within
`supplier_cache_seconds`; read-audit rows reach the audit log within
`audit_flush_seconds` (and are flushed at shutdown). Changes (mutations) are
never buffered: their audit rows are written in the change's own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("ketenpoort.audit")


#: An entry in the last fifth of its life is read again by the one request that
#: finds it so, while every other request is still answered from it.
REFRESH_AHEAD = 0.2

#: A waiter's answer when the read it waited for failed: it reads for itself.
_FAILED: Any = object()


class SupplierCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, Any]] = {}
        #: The read in flight per supplier, with the generation it started in.
        self._reading: dict[str, tuple[int, asyncio.Future[Any]]] = {}
        #: How often the cache was emptied; a row read before the last emptying is
        #: not kept (it may predate the change that emptied it).
        self.generation = 0

    def get(self, code: str) -> Any:
        entry = self._entries.get(code)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, code: str, value: Any, generation: int | None = None) -> None:
        """Keep `value`, read when the cache was at `generation` (if given)."""
        if generation is not None and generation != self.generation:
            return
        if self.seconds > 0 and value is not None:
            self._entries[code] = (time.monotonic() + self.seconds, value)

    def clear(self) -> None:
        """Forget every supplier (a registry change elsewhere: gateway/shared.py)."""
        self.generation += 1
        self._entries.clear()
        self._reading.clear()  # a read begun before the change answers its own request only

    async def lookup(self, code: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The supplier's registration: from the cache while it is fresh, otherwise
        read once (`load`) for every request that asks while the read is in flight.
        Without this, the moment an entry expires every request a busy process has in
        hand would read the registry at once, and the event loop would stall on them.
        An entry in its last fifth (`REFRESH_AHEAD`) is read again by one request."""
        if self.seconds <= 0:
            return await load()
        entry = self._entries.get(code)
        now = time.monotonic()
        reading = self._reading.get(code)
        if entry is not None and now < entry[0]:
            if reading is not None or entry[0] - now > self.seconds * REFRESH_AHEAD:
                return entry[1]
        elif reading is not None and reading[0] == self.generation:
            value = await asyncio.shield(reading[1])
            if value is not _FAILED:
                return value
            return await load()
        generation = self.generation
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._reading[code] = (generation, future)
        value = _FAILED
        try:
            try:
                value = await load()
            except Exception:
                if entry is not None and time.monotonic() < entry[0]:
                    return entry[1]  # a refresh that failed: the entry still holds
                raise
            self.put(code, value, generation)
            return value
        finally:
            future.set_result(value)
            if self._reading.get(code, (0, None))[1] is future:
                del self._reading[code]


class AuditBuffer:
    """Collects read-audit rows from requests and writes them in one statement
    every `interval` seconds (or when `limit` rows are waiting)."""

    def __init__(
        self, sessionmaker: Callable[[], AsyncSession], interval: float, limit: int = 5000
    ) -> None:
        self.sessionmaker = sessionmaker
        self.interval = interval
        self.limit = limit
        self._rows: list[tuple[Any, list[Any]]] = []
        self._waiting = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, actor: Any, reads: list[Any]) -> None:
        self._rows.append((actor, reads))
        self._waiting += len(reads)
        if self._waiting >= self.limit:
            self._wake.set()

    async def flush(self) -> None:
        from db.privacy import copy_reads

        rows, self._rows, self._waiting = self._rows, [], 0
        if not rows:
            return
        # One write for every request's reads, not one per request (an insert per
        # request cost the worker more CPU than the request itself).
        try:
            async with self.sessionmaker() as session, session.begin():
                await copy_reads(session, rows)
        except Exception:  # an audit write must never take a request down with it
            log.exception("could not write %d read-audit rows", sum(len(r) for _, r in rows))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-buffer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
