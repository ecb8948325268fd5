"""The live broker: one per gateway process, between the event table and the
subscriptions of that process.

One background task reads the events after the process-wide high-water position
in batches (db/events.py), loads what deciding and building them needs in a
fixed number of statements per batch, and puts each event into the bounded queue
of every subscriber whose topic it matches and who may see it
(`db.visibility.Facts.may_see`). Subscribers never touch the database for the
live stream.

It reads when woken: at once after a commit in this process that wrote events;
on PostgreSQL when another process's broker sends NOTIFY (LISTEN on a dedicated
connection, reconnected when lost); and every `live_poll_seconds` regardless, which
covers a missed notification, a lost LISTEN connection and writers outside any
gateway. NOTIFY is only a wake-up: what is delivered is always read from the
table. The broker sends the NOTIFY itself, after the local commit, on its own
connection: a NOTIFY inside the writing transaction would take PostgreSQL's
cluster-wide notify lock until that transaction's commit is flushed, so every
event-writing commit would wait for the previous one (async.c PreCommit_Notify).

With no subscriber in the process nobody could want the events: a wake-up then
reads nothing (at 08:30 that was a fifth of a worker's CPU, one read per batch
commit in every process). The high-water mark is moved on by the periodic poll
(one cheap statement: the stable head) and, before a subscription registers, by
`current()`, so a subscriber that joins later starts where it joins and gets
every later event once, in commit order; one that resumes from a cursor replays
from the table up to `current()` first, as before.

A subscriber whose queue is full is dropped (its websocket is closed with 4008
and the position to resume from); the others never wait for it. A graceful
shutdown (`drain`) ends every subscription the same way, with 1012.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import events, visibility
from db.engine import read_only
from db.events import START, Position, Topic
from db.models import Entitlement, Event, Licence
from domain.roles import DataType, Role
from domain.visibility import ConsentChange, Viewer
from live.audit import DeliveryAudit
from resolvers.clock import today
from settings import Settings

log = logging.getLogger("ketenpoort.live")

TOO_SLOW = "too slow"
SHUTDOWN = "shutdown"
#: Graceful shutdown: the subscription is ended with 1012 and the cursor to resume
#: after, by the subscriber's `on_drop`.
RESTART = "gateway restarting"


class SubscriptionEnded(Exception):
    """The broker ended this subscriber: too slow, or the gateway is stopping."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Revoked:
    """The school revoked the data exchange a subscription lives on: the stream ends
    here with CONSENT_REQUIRED, naming the school and where to resume."""

    school: str | None
    data_type: DataType


@dataclass(eq=False)
class Item:
    """One thing a subscriber receives: an event with the entitlement and licence it
    is about (as they are when read), or, for an initial state, an entitlement. One
    Item is shared by every subscriber that receives it."""

    at: Position
    event: Event | None
    entitlement: Entitlement | None
    licence: Licence | None = None
    #: An initial state's item: the cut the state reflects (its cursor).
    cut: events.Cut | None = None
    #: No event: the subscription ends here (its consent was revoked).
    revoked: Revoked | None = None
    #: The schema object built from it, once for all subscribers.
    node: Any = None
    #: Its `next` messages as live subscriptions render them, by operation and
    #: caller (live.transport.Operation.render).
    rendered: dict[Any, Any] = field(default_factory=dict)


class Subscriber:
    """One subscription's bounded queue and what the broker needs to route to it.
    Kept small (thousands per process): the queue and the waiter exist only while
    there is something in them or someone waiting."""

    __slots__ = (
        "_items",
        "_waiter",
        "closed",
        "direct",
        "last",
        "limit",
        "on_drop",
        "registered_at",
        "topic",
        "viewer",
    )

    def __init__(self, topic: Topic, viewer: Viewer, limit: int, registered_at: Position) -> None:
        self.topic = topic
        self.viewer = viewer
        self.limit = limit
        self.registered_at = registered_at
        self._items: deque[Item] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.closed: str | None = None
        #: Position of the last item the subscription has sent on (where to resume).
        self.last: Position | None = registered_at
        self.on_drop: Callable[[Subscriber], None] | None = None
        #: Delivers an item in the broker's own pass when it can be done at once
        #: (True), so that an idle subscription is not woken for it.
        self.direct: Callable[[Item], bool] | None = None

    def __len__(self) -> int:
        return len(self._items) if self._items else 0

    def offer(self, item: Item) -> bool:
        if self.direct is not None and self._waiter is not None and not self._items:
            # Its task waits on an empty queue: nothing can be overtaken.
            if self.direct(item):
                return True
        if self._items is None:
            self._items = deque()
        elif len(self._items) >= self.limit:
            return False
        self._items.append(item)
        self._wake()
        return True

    def close(self, reason: str) -> None:
        self.closed = reason
        self._items = None
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self) -> Item | None:
        """The next item if one is waiting, without waiting."""
        if self._items:
            return self._items.popleft()
        if self.closed is not None:
            raise SubscriptionEnded(self.closed)
        return None

    async def get(self) -> Item:
        while not self._items:
            self._items = None
            if self.closed is not None:
                raise SubscriptionEnded(self.closed)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


@dataclass
class BrokerStats:
    """Counters for tests and logs."""

    reads: int = 0
    events: int = 0
    #: Wake-ups that read no events: nobody in this process subscribes.
    skipped: int = 0
    notifications: int = 0
    listens: int = 0
    dropped: int = 0


def _keys(topic: Topic) -> list[tuple[str, Any]]:
    """Where a topic is filed: under its most selective condition."""
    if topic.entitlement_id is not None:
        return [("entitlement", topic.entitlement_id)]
    if topic.delivery_id is not None:
        return [("delivery", topic.delivery_id)]
    if topic.school_ids is not None:
        return [("school", school_id) for school_id in sorted(topic.school_ids)]
    if topic.status is not None:
        return [("status", topic.status)]
    if topic.kinds is not None:
        return [("kind", kind) for kind in sorted(topic.kinds)]
    return [("all", None)]


def _event_keys(row: Event) -> list[tuple[str, Any]]:
    keys: list[tuple[str, Any]] = [("all", None), ("kind", row.kind)]
    if row.entitlement_id is not None:
        keys.append(("entitlement", row.entitlement_id))
    if row.delivery_id is not None:
        keys.append(("delivery", row.delivery_id))
    if row.school_id is not None:
        keys.append(("school", row.school_id))
    if row.status is not None and row.kind in events.STATUS_KINDS:
        keys.append(("status", row.status))
    return keys


def engine_of(sessionmaker: Callable[[], AsyncSession]) -> AsyncEngine | None:
    bind = getattr(sessionmaker, "kw", {}).get("bind")
    return bind if isinstance(bind, AsyncEngine) else None


@dataclass
class Broker:
    settings: Settings
    sessionmaker: Callable[[], AsyncSession]
    engine: AsyncEngine | None = None
    high_water: Position = START
    #: The last horizon read (PostgreSQL): every event below it has committed and is
    #: visible to any later snapshot (db/events.py).
    horizon: int | None = None
    stats: BrokerStats = field(default_factory=BrokerStats)

    def __post_init__(self) -> None:
        self.instance = uuid.uuid4().hex
        self.poll = self.settings.live_poll_seconds
        self.batch_size = self.settings.live_batch_size
        # A subscriber that keeps up must be able to take one whole batch, which is
        # fanned out at once.
        self.queue_size = max(self.settings.live_queue_size, self.batch_size)
        self._index: dict[tuple[str, Any], set[Subscriber]] = {}
        self._count = 0
        self._wake = asyncio.Event()
        self._local_commit = False
        #: A read was asked for with `wake()` (not only a commit or a NOTIFY).
        self._asked = False
        #: Events may have been committed after `high_water` while nobody subscribed.
        self._behind = False
        #: `catch_up` and `current` never interleave (the high-water mark only grows).
        self._reading = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: set[asyncio.Task[Any]] = set()
        self._listen_connection: Any = None
        self._listen_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unhook: Callable[[], None] | None = None
        self.running = False
        #: Deliveries over websockets, for the schools' audit trails (live/audit.py).
        self.audit = DeliveryAudit(self.sessionmaker, self.settings.live_audit_seconds)
        #: Called with every batch fanned out (metrics: the live lag).
        self.on_fan_out: Callable[[list[Event]], None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def is_postgres(self) -> bool:
        return self.engine is not None and self.engine.dialect.name == "postgresql"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with self.sessionmaker() as session:
            await read_only(session)
            self.high_water = await events.stable_head(session)
        self._unhook = events.on_events_committed(self._on_local_commit)
        self.audit.start()
        self._tasks.append(asyncio.create_task(self._run(), name="live-broker-reader"))
        if self.is_postgres:
            self._tasks.append(asyncio.create_task(self._listen(), name="live-broker-listen"))
        self.running = True

    async def stop(self) -> None:
        """End every subscription and the background tasks."""
        self.running = False
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        for subscriber in self.subscribers():
            subscriber.close(SHUTDOWN)
        self._index.clear()
        self._count = 0
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for closer in list(self._closers):
            closer.cancel()
        await self.audit.stop()

    # --- subscribers -----------------------------------------------------------------------

    async def current(self) -> Position:
        """The high-water position, moved on to the stable head when the broker has
        skipped reads for want of subscribers. Call it right before `subscribe`
        (nothing awaited in between), and as the end of a catch-up replay."""
        if self._count == 0 and self._behind:
            async with self._reading:
                if self._count == 0 and self._behind:
                    await self._advance()
        return self.high_water

    def subscribe(self, topic: Topic, viewer: Viewer) -> Subscriber:
        """Register a subscriber. Every event after `subscriber.registered_at` (the
        high-water position now) that matches will be offered to it: registration
        and the fan-out of a batch never interleave. Await `current()` first, so
        that the high-water mark is not behind (a broker without subscribers skips
        its reads)."""
        subscriber = Subscriber(topic, viewer, self.queue_size, self.high_water)
        if not self.running:
            subscriber.close(SHUTDOWN)
            return subscriber
        for key in _keys(topic):
            self._index.setdefault(key, set()).add(subscriber)
        self._count += 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        removed = False
        for key in _keys(subscriber.topic):
            bucket = self._index.get(key)
            if bucket is not None and subscriber in bucket:
                bucket.discard(subscriber)
                removed = True
                if not bucket:
                    del self._index[key]
        if removed:
            self._count -= 1

    def subscribers(self) -> list[Subscriber]:
        found: set[Subscriber] = set()
        for bucket in self._index.values():
            found |= bucket
        return list(found)

    @property
    def subscriber_count(self) -> int:
        return self._count

    def _drop(self, subscriber: Subscriber) -> None:
        self.unsubscribe(subscriber)
        subscriber.close(TOO_SLOW)
        self.stats.dropped += 1
        if subscriber.on_drop is not None:
            subscriber.on_drop(subscriber)

    def drain(self) -> int:
        """Graceful shutdown: take no new subscribers and end every subscription as
        `RESTART` (its `on_drop` closes the websocket); how many were ended."""
        self.running = False
        ended = self.subscribers()
        for subscriber in ended:
            self.unsubscribe(subscriber)
            subscriber.close(RESTART)
            if subscriber.on_drop is not None:
                subscriber.on_drop(subscriber)
        return len(ended)

    def run_soon(self, work: Any) -> None:
        """Run a coroutine in the background, kept until it ends (websocket closes)."""
        task = asyncio.ensure_future(work)
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    # --- fan-out -------------------------------------------------------------------------

    def _fan_out(self, rows: list[Event], facts: visibility.Facts) -> None:
        drops: list[Subscriber] = []
        for row in rows:
            if not visibility.is_chain_event(row):
                if row.kind == ConsentChange.DATA_EXCHANGE_REVOKED.value:
                    drops += self._revoked(row)
                continue
            item: Item | None = None
            decided: dict[Any, bool] = {}
            for key in _event_keys(row):
                bucket = self._index.get(key)
                if not bucket:
                    continue
                for subscriber in bucket:
                    if not subscriber.topic.matches(row):
                        continue
                    viewer = subscriber.viewer
                    allowed = decided.get(viewer.key)
                    if allowed is None:
                        allowed = decided[viewer.key] = facts.may_see(viewer, row)
                    if not allowed:
                        continue
                    if item is None:
                        item = self._item(row, facts)
                    if not subscriber.offer(item):
                        drops.append(subscriber)
        for subscriber in drops:
            if subscriber.closed is None:
                self._drop(subscriber)

    def _revoked(self, row: Event) -> list[Subscriber]:
        """A revocation, in stream order: every subscription that lived on it gets the
        notice after the events before it, and nothing after; those whose queue is
        full are returned (too slow)."""
        change = row.payload or {}
        supplier_id, role = change.get("supplierId"), Role(str(change.get("role")))
        data_type = DataType(str(change.get("dataType")))
        notice = Item(
            at=events.position(row),
            event=None,
            entitlement=None,
            revoked=Revoked(change.get("school"), data_type),
        )
        full = []
        for subscriber in self.subscribers():
            viewer, topic = subscriber.viewer, subscriber.topic
            if viewer.supplier_id != supplier_id or role not in viewer.roles:
                continue
            if Role.OPERATOR in viewer.roles or topic.data_type != data_type:
                continue
            schools = topic.of_schools
            if schools is not None and row.school_id not in schools:
                continue
            self.unsubscribe(subscriber)
            if not subscriber.offer(notice):
                full.append(subscriber)
        return full

    @staticmethod
    def _item(row: Event, facts: visibility.Facts) -> Item:
        return Item(
            at=events.position(row),
            event=row,
            entitlement=facts.entitlements.get(row.entitlement_id)
            if row.entitlement_id is not None
            else None,
            licence=facts.licences.get(row.licence_id) if row.licence_id is not None else None,
        )

    # --- reading ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Read now, subscribers or not."""
        self._asked = True
        self._wake.set()

    def _on_local_commit(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._local_commit = True
            self._wake.set()
        else:  # a commit in another thread
            loop.call_soon_threadsafe(self._on_local_commit)

    async def _run(self) -> None:
        delay = self.poll
        retry = 0.01
        while True:
            polled = False
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    polled = True
            self._wake.clear()
            if self._local_commit:
                self._local_commit = False
                await self._notify_others()
            asked, self._asked = self._asked, False
            try:
                if self._count == 0 and not asked:
                    # Nobody here could want the events: no read per commit; the
                    # poll keeps the high-water mark near the head.
                    self._behind = True
                    self.stats.skipped += 1
                    if polled:
                        async with self._reading:
                            if self._count == 0:
                                await self._advance()
                    delay, retry = self.poll, 0.01
                    continue
                async with self._reading:
                    held = await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; keep trying
                log.warning("live broker could not read events: %s", exc)
                delay = min(max(self.poll, 1.0) * 2, 30.0)
                continue
            if held:
                # Committed events wait behind an open transaction that will not wake
                # us when it ends: look again soon, backing off to the poll interval.
                delay, retry = retry, min(retry * 2, self.poll)
            else:
                delay, retry = self.poll, 0.01

    async def _advance(self) -> None:
        """No subscribers: move the high-water mark to the stable head without
        reading the events (one statement after the horizon)."""
        async with self.sessionmaker() as session:
            await read_only(session)
            below = await events.horizon(session)
            head = await events.stable_head(session, below)
        self.horizon = below
        self.high_water = max(self.high_water, head)
        self._behind = False
        self.stats.reads += 1

    async def catch_up(self) -> bool:
        """Read and fan out everything readable now; True when committed events are
        still held back by an open transaction."""
        self._behind = False
        while True:
            async with self.sessionmaker() as session:
                await read_only(session)
                below = self.horizon = await events.horizon(session)
                rows = await events.read(session, self.high_water, self.batch_size, below=below)
                facts = await visibility.load_facts(session, rows, today()) if rows else None
                full = len(rows) == self.batch_size
                held = False
                if not full:
                    after = events.position(rows[-1]) if rows else self.high_water
                    held = await events.held_back(session, after, below)
            self.stats.reads += 1
            if rows:
                assert facts is not None
                # No await from here to the new high-water mark: a subscriber registers
                # either before this batch is fanned out or after it.
                self._fan_out(rows, facts)
                self.high_water = events.position(rows[-1])
                self.stats.events += len(rows)
                if self.on_fan_out is not None:
                    self.on_fan_out(rows)
            if not full:
                return held

    async def replay(
        self, viewer: Viewer, topic: Topic, after: Position, upto: Position
    ) -> AsyncIterator[Item]:
        """The events of `topic` the viewer may see in (after, upto], from the table,
        one short session per page."""
        while after < upto:
            async with self.sessionmaker() as session:
                await read_only(session)
                rows = await events.read(session, after, self.batch_size, upto=upto, topic=topic)
                facts = await visibility.load_facts(session, rows, today()) if rows else None
            if not rows:
                return
            assert facts is not None
            day = today()
            for row in rows:
                if facts.may_see(viewer, row, handed_over=day):
                    yield self._item(row, facts)
            after = events.position(rows[-1])
            if len(rows) < self.batch_size:
                return

    # --- PostgreSQL LISTEN / NOTIFY ------------------------------------------------------

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self.instance:
            self.stats.notifications += 1
            self._wake.set()

    async def _notify_others(self) -> None:
        connection = self._listen_connection
        if connection is None:
            return  # the others' periodic read will find it
        try:
            async with self._listen_lock:
                await events.notify(connection, self.instance)
        except Exception as exc:
            log.warning("live broker could not send NOTIFY: %s", exc)

    def _connect_arguments(self) -> dict[str, Any]:
        assert self.engine is not None
        url = self.engine.url
        return {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "database": url.database,
        }

    async def _listen(self) -> None:
        import asyncpg

        backoff = 0.5
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(**self._connect_arguments(), timeout=10)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(events.CHANNEL, self._on_notify)
                self._listen_connection = connection
                self.stats.listens += 1
                backoff = 0.5
                self._wake.set()  # catch up on what was committed while not listening
                while not lost.is_set():
                    try:
                        async with asyncio.timeout(30):
                            await lost.wait()
                    except TimeoutError:
                        async with self._listen_lock:
                            await connection.fetchval("SELECT 1", timeout=10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live broker LISTEN connection lost: %s", exc)
            finally:
                self._listen_connection = None
                if connection is not None and not connection.is_closed():
                    try:
                        await asyncio.wait_for(connection.close(), 2)
                    except (Exception, asyncio.CancelledError):
                        connection.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
