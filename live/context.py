"""The GraphQL context of one operation on a websocket (and of in-process
subscriptions in tests).

A connection lives for hours and runs many operations: each operation gets a
context of its own (its own loaders, its caller resolved and rate-limited once, as
an HTTP request is), and none holds a database session between events: every read
opens and closes its own (`ShortSessions`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import read_only
from db.events import Cut, Topic
from domain.visibility import Viewer
from live.streams import open_stream
from resolvers.context import Context, Database

T = TypeVar("T")


class ShortSessions(Database):
    """Every read in its own short session: nothing stays open between events."""

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._sessionmaker() as session:
            await read_only(session)
            return await work(session)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessionmaker() as session, session.begin():
            yield session

    async def close(self) -> None:
        return None


@dataclass
class LiveContext(Context):
    """The context of one operation over a websocket, or of an in-process
    subscription (`connection` None)."""

    broker: Any = None
    #: The websocket connection (live.transport.Connection); None in-process.
    connection: Any = None
    #: This operation on the connection (live.transport.Operation); None in-process.
    operation: Any = None
    token_expires_at: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.db = ShortSessions(self.sessionmaker)
        # A licenceActivate over the websocket goes through the process's group
        # commit and reference cache, as over HTTP (gateway/resources.py; the
        # lifespan hands them to the endpoint).
        activation = getattr(getattr(self.connection, "endpoint", None), "activation", None)
        if activation is not None:
            self.activations = activation.group_commit
            self.reference_cache = activation.cache

    def open_stream(
        self,
        viewer: Viewer,
        topic: Topic,
        start: Cut | None,
        initial_state: bool,
    ) -> AsyncGenerator[Any, None] | None:
        """The subscription's stream (live/streams.py), or None when live
        subscriptions are not running in this process."""
        broker = self.broker
        if broker is None or not broker.running:
            return None
        return open_stream(self, broker, viewer, topic, start, initial_state)
