"""The live stream on a busy, shared PostgreSQL server (issue 13.1, DOMAIN.md §8).

The reader's horizon waits only for transactions that hold the event-writer lock
(db/events.py, migration 0005): a write transaction in another database or on other
tables of this one does not hold events back; an open event-writing transaction
holds back the events written after it started, and none is skipped when it
commits. Runs on PostgreSQL (SQLite serialises writers; nothing can be held back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from db import events
from db.engine import create_sessionmaker
from db.models import Entitlement
from db.outbox import EventRow, record_events
from domain.events import EventKind
from domain.roles import Actor
from tests.api.test_delivery import SHOP
from tests.api.test_live import (
    PROGRESS,
    LiveApp,
    lower,
    new_delivery,
    positions,
    until,
)
from tests.api.test_live import live_app as live_app  # noqa: F401  (the module's gateway)
from tests.conftest import Backend

#: How long the other writers stay open while events flow (the issue's figure).
BUSY_SECONDS = 30
#: The most an event may take from its commit to the subscriber meanwhile.
DELIVERY_BOUND = 1.0


@pytest.fixture
def pg(live_app: LiveApp) -> LiveApp:  # noqa: F811
    if not live_app.backend.is_postgres:
        pytest.skip("PostgreSQL behaviour: SQLite serialises writers")
    return live_app


@asynccontextmanager
async def open_writer(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that has written a row (so it has a transaction id, and would be
    the server's oldest) and stays open until the block ends; rolled back then."""
    async with engine.connect() as connection:
        await connection.begin()
        await connection.execute(text("CREATE TEMP TABLE busy (x integer)"))
        await connection.execute(text("INSERT INTO busy VALUES (1)"))
        assert await connection.scalar(text("SELECT pg_current_xact_id_if_assigned()")) is not None
        yield connection
        # Still open: it held its id the whole time.
        assert await connection.scalar(text("SELECT pg_current_xact_id_if_assigned()")) is not None
        await connection.rollback()


async def test_writers_elsewhere_do_not_hold_the_stream_back(pg: LiveApp, backend: Backend) -> None:
    gw = pg
    delivery_id, (entitlement_id,) = await new_delivery(gw)
    stream = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=SHOP)
    # `backend` is another database on the same server (the gateway has its own).
    async with open_writer(backend.engine), open_writer(gw.engine):
        await lower(gw, entitlement_id, 29)
        (seen,) = await stream.events(1)  # before either writer ends
        assert seen["kind"] == "ENTITLEMENT_QUANTITY_LOWERED"
        async with create_sessionmaker(gw.engine)() as reader:
            (row,) = [
                r
                for r in await events.read(reader, events.START, 10_000)
                if str(r.delivery_id) == delivery_id and r.kind == seen["kind"]
            ]
            assert events.position(row) == positions([seen])[0]
    await stream.close()


@pytest.mark.slow
async def test_events_flow_for_30_s_while_other_writers_stay_open(
    pg: LiveApp, backend: Backend
) -> None:
    """The issue's test: a write transaction open in another database and one on an
    unrelated table of the gateway's database, for 30 s, while events flow; each
    event reaches its subscriber within a second of its commit."""
    gw = pg
    delivery_id, (entitlement_id,) = await new_delivery(gw, quantity=100_000)
    stream = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=SHOP)
    latencies: list[float] = []
    quantity = 100_000
    async with open_writer(backend.engine), open_writer(gw.engine):
        ends = time.monotonic() + BUSY_SECONDS
        while time.monotonic() < ends:
            quantity -= 1
            await lower(gw, entitlement_id, quantity)
            committed = time.monotonic()
            (seen,) = await stream.events(1)
            latencies.append(time.monotonic() - committed)
            assert seen["kind"] == "ENTITLEMENT_QUANTITY_LOWERED"
    await stream.close()
    assert len(latencies) > 10
    assert max(latencies) < DELIVERY_BOUND, sorted(latencies)[-5:]


async def _record_open(session: AsyncSession, entitlement_id: int, quantity: int) -> None:
    row = await session.get(Entitlement, entitlement_id)
    assert row is not None
    await record_events(
        session,
        Actor(None, "operator"),
        [
            EventRow(
                kind=EventKind.ENTITLEMENT_QUANTITY_LOWERED,
                school_id=row.school_id,
                status=row.status,
                delivery_id=row.delivery_id,
                entitlement_id=entitlement_id,
                payload={"quantity": quantity},
            )
        ],
    )


async def test_an_open_event_writer_holds_later_events_back_and_none_is_skipped(
    pg: LiveApp,
) -> None:
    gw = pg
    delivery_id, (entitlement_id,) = await new_delivery(gw)
    stream = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=SHOP)
    (state,) = await stream.take(1)
    assert state["__typename"] == "EntitlementSnapshot"
    stream.pending = asyncio.ensure_future(stream.results.__anext__())  # waits for an event
    sessions = create_sessionmaker(gw.engine)
    async with sessions() as head_session:
        head = await events.stable_head(head_session)
    async with sessions() as writer:
        await _record_open(writer, int(entitlement_id), 1000)  # written, not committed
        for quantity in (29, 28, 27):
            await lower(gw, entitlement_id, quantity)  # committed after it
        later = [
            r.id
            for r in await gw.stream_events(delivery_id=int(delivery_id))
            if r.kind == EventKind.ENTITLEMENT_QUANTITY_LOWERED.value
        ]
        assert len(later) == 3
        # The broker has read again since those commits, and passed none of them on.
        reads = gw.broker.stats.reads
        await until(lambda: gw.broker.stats.reads >= reads + 3, "the broker reading again")
        assert stream.pending is not None
        assert not stream.pending.done()
        async with sessions() as reader:
            readable = {r.id for r in await events.read(reader, head, 10_000)}
            assert readable.isdisjoint(later)
            assert await events.held_back(reader, head)
        await writer.commit()
    received = await stream.events(4)
    in_table = [
        r
        for r in await gw.stream_events(delivery_id=int(delivery_id))
        if r.kind == EventKind.ENTITLEMENT_QUANTITY_LOWERED.value
    ]
    assert [events.position(r) for r in in_table] == positions(received)
    assert in_table[0].payload == {"quantity": 1000}  # the open one sorts first
    await stream.close()


async def test_an_event_writing_transaction_holds_the_writer_lock_until_it_ends(
    pg: LiveApp,
) -> None:
    """What the horizon relies on: the lock is taken with the first event and kept
    to the end; the horizon stays at or below the writer's id while it is open."""
    gw = pg
    sessions = create_sessionmaker(gw.engine)
    entitlement_id = await _any_entitlement(gw)
    async with sessions() as writer:
        await _record_open(writer, entitlement_id, 999)
        own = int(await writer.scalar(text("SELECT pg_current_xact_id()::text::bigint")))
        async with sessions() as reader:
            assert await events.horizon(reader) <= own
        await writer.rollback()
    async with sessions() as reader:
        assert await events.horizon(reader) > own


async def test_events_are_written_in_read_committed_only(pg: LiveApp) -> None:
    """The position needs a fresh snapshot after the lock: a REPEATABLE READ writer
    is refused rather than given a position a reader may already have passed."""
    gw = pg
    entitlement_id = await _any_entitlement(gw)
    async with create_sessionmaker(gw.engine)() as writer:
        await writer.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        with pytest.raises(Exception, match="READ COMMITTED"):
            await _record_open(writer, entitlement_id, 998)
        await writer.rollback()


async def _any_entitlement(gw: LiveApp) -> int:
    async with create_sessionmaker(gw.engine)() as session:
        found = await session.scalar(select(Entitlement.id).limit(1))
    assert found is not None
    return int(found)


async def test_many_writers_at_once_lose_and_repeat_nothing(pg: LiveApp) -> None:
    """Concurrent event writers, some slow to commit: the subscriber receives every
    event once, in position order."""
    gw = pg
    delivery_id, ids = await new_delivery(gw, lines=4)
    stream = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=SHOP)
    sessions = create_sessionmaker(gw.engine)
    release = asyncio.Event()
    written: list[int] = []

    async def slow_writer(entitlement_id: int, quantity: int) -> None:
        async with sessions() as writer:
            await _record_open(writer, entitlement_id, quantity)
            written.append(entitlement_id)
            await release.wait()
            await writer.commit()

    slow = [asyncio.create_task(slow_writer(int(i), 500 + n)) for n, i in enumerate(ids[:2])]
    await until(lambda: len(written) == 2, "the slow writers' events")

    async def fast_writes() -> None:
        for quantity in range(29, 24, -1):
            for entitlement_id in ids[2:]:
                await lower(gw, entitlement_id, quantity)

    await fast_writes()
    release.set()
    await asyncio.gather(*slow)
    in_table = [
        r
        for r in await gw.stream_events(delivery_id=int(delivery_id))
        if r.kind == EventKind.ENTITLEMENT_QUANTITY_LOWERED.value
    ]
    assert len(in_table) == 12
    received = await stream.events(12)
    assert positions(received) == [events.position(r) for r in in_table]
    await stream.close()
