"""Plain asyncpg on PostgreSQL, beside SQLAlchemy, for the paths where SQLAlchemy's
per-statement work is most of the cost: compiled reads and the activation click.

`connect_arguments` turns the gateway's SQLAlchemy URL into asyncpg's arguments
(one source for the pool, the live broker's LISTEN connection and tests).
`Connections` is the free list of plain connections the compiled reads use for
their single statements in autocommit: each prepares a statement once (asyncpg's
statement cache, large statements included) and leaves no session state behind
(no SET, LISTEN, cursor, transaction or advisory lock outlives a checkout).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
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


#: asyncpg caches (prepares once per connection) only statements up to 15 KiB by
#: default; a compiled read of a rich selection is larger (a 100-row page with
#: nested lists: 18 KB) and was parsed and planned again on every request.
MAX_CACHED_STATEMENT = 256 * 1024


class Connections:
    """A process's plain connections for single statements in autocommit (the
    compiled reads): a free list, opened on demand up to `max_size`, each with the
    json codecs and the large statement cache. A checkout and its return are a list
    pop and push (asyncpg's pool wraps every return in a task and a reset). A
    connection handed back after an interrupted statement (a request cancelled at
    its deadline) or a broken one is closed, not reused; its place is opened again
    on demand."""

    def __init__(self, url: str | URL, *, max_size: int = 10) -> None:
        self._arguments = connect_arguments(url)
        self._max = max_size
        self._free: list[asyncpg.Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(
            **self._arguments, max_cacheable_statement_size=MAX_CACHED_STATEMENT
        )
        await _init(connection)
        return connection

    async def take(self) -> asyncpg.Connection:
        while True:
            if self._free:
                return self._free.pop()
            if self._open < self._max:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._hand_over(None)
                    raise
            waiter: asyncio.Future[asyncpg.Connection | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                connection = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed is not None:
                        self.give(handed, healthy=True)
                    else:
                        self._hand_over(None)
                raise
            if connection is not None:
                return connection
            # A place came free (a connection was closed): open one in the loop above.

    def give(self, connection: asyncpg.Connection, *, healthy: bool) -> None:
        if self._closed or not healthy or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
            self._open -= 1
            self._hand_over(None)
            return
        if not self._hand_over(connection):
            self._free.append(connection)

    def _hand_over(self, connection: asyncpg.Connection | None) -> bool:
        """To the first caller still waiting: the connection, or (None) the news that
        a place is free to open one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    @property
    def waiting(self) -> int:
        """Checkouts waiting for a place."""
        return sum(not waiter.done() for waiter in self._waiters)

    def acquire(self) -> _Checkout:
        return _Checkout(self)

    async def close(self) -> None:
        self._closed = True
        free, self._free = self._free, []
        for connection in free:
            self._open -= 1
            await connection.close()


class _Checkout:
    __slots__ = ("_connection", "_connections")

    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection = await self._connections.take()
        return self._connection

    async def __aexit__(self, kind: Any, error: Any, _traceback: Any) -> None:
        # PostgreSQL's own errors leave the connection ready for the next statement;
        # anything else (a cancellation mid-statement) may not.
        healthy = kind is None or isinstance(error, asyncpg.PostgresError)
        self._connections.give(self._connection, healthy=healthy)
