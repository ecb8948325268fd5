"""The deliverer: pushes the event stream to every registered endpoint, one
gateway process per endpoint at a time.

Leases. Every `push_lease_seconds / 3` a process takes or renews the lease of
the enabled endpoints that are free, expired or its own, in one UPDATE
(db/push.acquire), up to its share: the enabled endpoints divided by the
processes that deliver (each notes itself in `push_process` at every round;
db/push.share), rounded up, its own kept first. A process over its share (one
joined) lets the rest go at once, and the newcomer takes them at its next
round. Only the holder delivers; every write it makes (cursor, answers,
schedule) is conditional on still holding the lease. A process that
dies (kill -9) simply stops renewing: when its lease expires another process
takes the endpoint and starts from the stored cursor, so the batch that was in
flight is sent again, with the same event ids (push/envelope.message_id).

One read of the stream per process. A single reader (`pump`) reads the events
after its position in commit order (db/events.read, the same function and
position as the live subscriptions), loads the facts for a batch once, and hands
each leased endpoint that is up to date the events its supplier may see (the
visibility and consent rule of db/events.Facts.may_see, the one the live
subscriptions use) and that are of its kinds, as ready envelopes. An endpoint
that is behind (after a restart, a pause, or too many events waiting in memory)
reads its own backlog with the same function, from its cursor up to the reader's
position, one page at a time, and then joins the shared reader.

Per endpoint, in order. A worker sends its waiting events oldest first, in
batches of at most `batch_size` events of one school (the chain groups events
that need consent by school); the next batch only goes when the previous one was
answered, so a batch that cannot be delivered holds back everything after it for
that endpoint (push/schedule.py says when it is tried again). Each answer per
event is stored with the new cursor in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db import events
from db import push as store
from db.engine import read_only
from db.events import START, Position, Topic
from db.models import Entitlement, Event, Licence
from db.secrets import SecretBox, SecretUnreadable
from domain.visibility import Viewer
from gateway import metrics
from push import envelope as envelopes
from push.client import Outcome, PushClient, Target
from push.schedule import after_failure, due
from resolvers.clock import today
from settings import Settings

log = logging.getLogger("ketenpoort.push")

Clock = Callable[[], datetime]


#: Seconds between writes of a cursor that only passed events of others.
ADVANCE_EVERY = 5.0
#: An event that has waited this long (in the queue or in a request not answered
#: yet) is shown in the status's lagSeconds without waiting for the next answer
#: (checked once a second, written with the answers: db/push.record_batches).
MARK_WAITING_AFTER = 1.0
#: Seconds between two rounds of deleting answers older than the retention.
PRUNE_EVERY = 3600.0
#: Answers deleted per statement (a round repeats until fewer are found).
PRUNE_CHUNK = 5000


def utc_now() -> datetime:
    return datetime.now(UTC)


def waited(now: datetime, since: datetime) -> float:
    """Seconds from `since` to `now` (SQLite gives naive UTC times back)."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return (now - since).total_seconds()


@dataclass(frozen=True)
class Pending:
    """One event waiting for an endpoint, with its envelope ready."""

    at: Position
    event_id: int
    school_id: int | None
    occurred_at: datetime
    body: dict[str, Any]


@dataclass
class WorkerStats:
    attempts: int = 0
    batches: int = 0
    events: int = 0
    catch_up_reads: int = 0


class Worker:
    """Delivery to one leased endpoint."""

    def __init__(self, service: PushService, row: store.PushEndpoint, roles: frozenset[Any]):
        self.service = service
        self.id = row.id
        self.stats = WorkerStats()
        self.queue: deque[Pending] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.seeds_due = False  # set by the lease round when a seed waits, or by poke
        self.configure(row, roles)
        self.cursor: Position = (row.cursor_tx, row.cursor_id)
        self.reached: Position = self.cursor
        self.synced = False
        self._advanced = 0.0
        #: When the oldest event that was dropped from memory (the queue was too
        #: long) and not read back yet began to wait.
        self.dropped_since: datetime | None = None
        #: The `pending_since` the database holds (as far as this worker wrote it).
        self.stored_pending: datetime | None = row.pending_since

    def configure(self, row: store.PushEndpoint, roles: frozenset[Any]) -> None:
        self.version = row.config_version
        self.viewer = Viewer(row.supplier_id, roles)
        #: The endpoint's kind in the metrics: the roles its supplier receives in.
        self.kind = "+".join(sorted(str(role.value) for role in roles)) or "none"
        self.kinds = frozenset(row.kinds) if row.kinds else None
        self.batch_size = row.batch_size
        self.failures = row.failures
        self.next_attempt_at = row.next_attempt_at
        self.paused_until = row.paused_until
        self.secret_problem: str | None = None
        try:
            secret = self.service.box.open(row.secret_cipher)
        except SecretUnreadable as error:
            secret, self.secret_problem = "", str(error)
        self.target = Target(
            endpoint_id=row.id,
            url=row.url,
            auth=store.AuthKind(row.auth),
            secret=secret,
            token_url=row.token_url,
            client_id=row.client_id,
            scope=row.scope,
        )

    # --- what reaches the queue ---

    def wants(self, row: Event, facts: events.Facts) -> bool:
        if row.kind not in envelopes.SENDABLE:
            return False  # a kind the chain's protocol has no type for
        if self.kinds is not None and row.kind not in self.kinds:
            return False
        # Judged for the moment of the event and for the hand-over now (db/visibility.py).
        return facts.may_see(self.viewer, row, handed_over=today())

    def accept(self, items: Sequence[Pending], end: Position) -> None:
        """The shared reader's batch up to `end` (this worker is synced with it):
        `items` are the events of it for this endpoint."""
        if end <= self.reached:
            return  # joined with a cursor beyond the shared reader: already covered
        self.queue.extend(p for p in items if p.at > self.reached)
        self.reached = end
        if len(self.queue) > self.service.settings.push_queue_limit:
            # Too much waits in memory (a receiver that is away): forget it and read
            # the backlog from the cursor again when the receiver takes events.
            self.dropped_since = self.waiting_since()
            self.queue.clear()
            self.reached = self.cursor
            self.synced = False
        if items:
            self.wake.set()

    async def catch_up(self) -> None:
        """Read one page of this endpoint's backlog (from where its queue ends up to
        the shared reader's position); synced once it reaches that position."""
        service = self.service
        upto = service.tail
        if self.reached >= upto:
            self.synced = True
            return
        limit = service.settings.live_batch_size
        topic = Topic(kinds=self.kinds) if self.kinds is not None else None
        async with service.sessionmaker() as session:
            await read_only(session)
            rows = await events.read(session, self.reached, limit, upto=upto, topic=topic)
            facts = await events.load_facts(session, rows, today()) if rows else events.Facts()
            bodies = await Bodies.load(session, rows, facts, self) if rows else Bodies()
        self.stats.catch_up_reads += 1
        for row in rows:
            if self.wants(row, facts):
                self.queue.append(bodies.pending(row))
        if self.queue:
            self.dropped_since = None  # the oldest waiting event is in the queue again
        self.reached = events.position(rows[-1]) if len(rows) == limit else upto
        # No await from here: the shared reader cannot move in between.
        if self.reached >= service.tail:
            self.reached = service.tail
            self.synced = True
            self.dropped_since = None

    def waiting_since(self) -> datetime | None:
        """When the oldest event not yet delivered to this endpoint began to wait,
        as far as this worker knows (None: none waits, or none known yet)."""
        if self.queue:
            return self.queue[0].occurred_at
        return self.dropped_since

    # --- one attempt ---

    def due(self, now: datetime) -> bool:
        return due(self.next_attempt_at, now)

    async def step(self, now: datetime | None = None) -> str:
        """One attempt, when due: deliver any open seed, else the next batch.
        Returns what happened (for tests and the loop): "waiting" (not due),
        "idle" (nothing to send), "behind" (read backlog, nothing to send yet),
        "sent", "failed", "lost" (lease lost),
        "stopped" (the lease lapsed: the service must renew first)."""
        service = self.service
        now = now or service.clock()
        if not self.due(now):
            return "waiting"
        if not service.lease_valid():
            return "stopped"
        if self.secret_problem is not None:
            return await self._failed(Outcome(False, error=self.secret_problem), now, 0)
        if self.seeds_due:
            seeded = await self._seeds(now)
            if seeded is not None:
                return seeded
        if not self.synced and len(self.queue) < self.batch_size:
            await self.catch_up()
        batch = self._next_batch()
        if not batch and not self.synced:
            return "behind"  # more backlog to read: the loop goes on at once
        if not batch:
            # Events that are not for this endpoint only move the stored cursor now and
            # then: after a restart they are read again and skipped again.
            moment = time.monotonic()
            if self.reached > self.cursor and moment - self._advanced >= ADVANCE_EVERY:
                async with service.sessionmaker() as session, session.begin():
                    if not await store.advance(session, self.id, service.owner, self.reached, now):
                        return self._lost()
                self.cursor = self.reached
                self.stored_pending = None
                self._advanced = moment
            return "idle"
        self.stats.attempts += 1
        outcome = await service.client.send(self.target, [p.body for p in batch])
        if not outcome.answered:
            return await self._failed(outcome, now, len(batch))
        answers = [_answer(p, outcome) for p in batch]
        rest = len(self.queue) - len(batch)
        cursor = batch[-1].at if rest else self.reached
        if rest:
            pending_since: datetime | None = self.queue[len(batch)].occurred_at
        elif not self.synced:
            # Backlog not read yet waits behind this batch: at least this long.
            pending_since = self.dropped_since or batch[-1].occurred_at
        else:
            pending_since = None
        if not await service.record(store.Delivered(self.id, cursor, answers, now, pending_since)):
            return self._lost()
        for _ in batch:
            self.queue.popleft()
        self.cursor = cursor
        self.stored_pending = pending_since
        self.failures = 0
        self.next_attempt_at = self.paused_until = None
        self.stats.batches += 1
        self.stats.events += len(batch)
        refused = sum(1 for a in answers if a.status not in (0, None))
        metrics.observe_push_answered(
            self.kind,
            len(answers) - refused,
            refused,
            [waited(now, p.occurred_at) for p in batch],
        )
        service.observe(batch, now)
        return "sent"

    def _next_batch(self) -> list[Pending]:
        """The oldest waiting events of one school, at most `batch_size`."""
        if not self.queue:
            return []
        school = self.queue[0].school_id
        batch: list[Pending] = []
        for pending in self.queue:
            if pending.school_id != school or len(batch) == self.batch_size:
                break
            batch.append(pending)
        return batch

    async def _failed(self, outcome: Outcome, now: datetime, events_sent: int) -> str:
        service = self.service
        nxt = after_failure(self.failures, now, outcome.retry_after)
        error = outcome.error or f"HTTP {outcome.http_status}"
        # Unknown (nothing read yet): the stored value stays.
        pending_since = self.waiting_since() or self.stored_pending
        metrics.observe_push_failed(self.kind, events_sent)
        async with service.sessionmaker() as session, session.begin():
            if not await store.record_failure(
                session,
                self.id,
                service.owner,
                failures=nxt.failures,
                next_attempt_at=nxt.at,
                paused_until=nxt.paused_until,
                error=error,
                now=now,
                pending_since=pending_since,
            ):
                return self._lost()
        self.stored_pending = pending_since
        self.failures = nxt.failures
        self.next_attempt_at = nxt.at
        self.paused_until = nxt.paused_until
        log.warning(
            "push endpoint %s unavailable (%s); attempt %s failed, next at %s",
            self.id,
            error,
            nxt.failures,
            nxt.at.isoformat(),
        )
        return "failed"

    def _lost(self) -> str:
        self.service.lost(self.id)
        return "lost"

    # --- seeds: the current state of a school, then the live stream goes on ---

    async def _seeds(self, now: datetime) -> str | None:
        service = self.service
        async with service.sessionmaker() as session:
            seeds = await store.open_seeds(session, self.id)
        self.seeds_due = False
        for seed in seeds:
            statement = events.snapshot_statement(
                self.viewer, Topic(school_ids=frozenset({seed.school_id})), today()
            )
            async with service.sessionmaker() as session:
                snapshot = await events.snapshot(
                    session, statement, service.settings.live_initial_state_limit
                )
            async with service.sessionmaker() as session:
                lookups = await store.load_lookups(session, snapshot.rows, [])
            bodies = [envelopes.seed_envelope(seed.id, row, lookups) for row in snapshot.rows]
            for start in range(0, len(bodies), self.batch_size):
                outcome = await service.client.send(
                    self.target, bodies[start : start + self.batch_size]
                )
                if not outcome.answered:
                    self.seeds_due = True  # the seed is sent again, whole, next time
                    return await self._failed(
                        outcome, now, len(bodies[start : start + self.batch_size])
                    )
            async with service.sessionmaker() as session, session.begin():
                if not await store.seed_done(
                    session, seed.id, self.id, service.owner, len(bodies), now
                ):
                    return self._lost()
        return "sent" if seeds else None

    # --- the background loop ---

    async def run(self) -> None:
        service = self.service
        while True:
            self.wake.clear()
            try:
                result = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away; try again shortly
                log.exception("push endpoint %s: delivery step failed", self.id)
                result = "error"
            if result == "lost":
                return  # another process delivers now; this worker is gone
            if (result == "sent" and self.queue) or result == "behind":
                continue
            if result == "waiting" and self.next_attempt_at is not None:
                wait = (self.next_attempt_at - service.clock()).total_seconds()
                timeout = min(max(wait, 0.0), service.settings.push_lease_seconds)
            elif result in ("idle", "sent"):
                timeout = service.settings.push_lease_seconds
            else:
                timeout = 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.wake.wait()


def _candidates(
    row: Event, facts: events.Facts, by_supplier: dict[int, list[Worker]]
) -> list[Worker]:
    """The workers whose supplier is a party to the event's entitlement: only they
    can be allowed to see it (an endpoint never holds the operator's role)."""
    involved = facts.involved.get(row.entitlement_id) if row.entitlement_id else None
    if involved is None:
        return []
    suppliers = {involved.seller_id, involved.publisher_id}
    suppliers.update(supplier for supplier, _role in involved.recipients)
    found: list[Worker] = []
    for supplier in suppliers:
        if supplier is not None and supplier in by_supplier:
            found.extend(by_supplier[supplier])
    return found


def _answer(pending: Pending, outcome: Outcome) -> store.Answer:
    ident = pending.body["id"]
    status, message = outcome.answers.get(ident, (outcome.default_status, outcome.default_message))
    if status is None and outcome.default_status is None and ident not in outcome.answers:
        message = "accepted without an answer for this event"
    return store.Answer(pending.event_id, ident, status, message, outcome.http_status)


@dataclass
class Bodies:
    """The envelopes of one batch of the stream, built once for every worker."""

    facts: events.Facts = field(default_factory=events.Facts)
    lookups: store.Lookups = field(default_factory=store.Lookups)
    built: dict[int, Pending] = field(default_factory=dict)

    @classmethod
    async def load(
        cls, session: AsyncSession, rows: Sequence[Event], facts: events.Facts, *_: Any
    ) -> Bodies:
        licences = list(facts.licences.values())
        lookups = await store.load_lookups(session, facts.entitlements.values(), licences)
        return cls(facts, lookups)

    def pending(self, row: Event) -> Pending:
        found = self.built.get(row.id)
        if found is None:
            entitlement: Entitlement = self.facts.entitlements[row.entitlement_id]  # type: ignore[index]
            licence: Licence | None = (
                self.facts.licences.get(row.licence_id) if row.licence_id is not None else None
            )
            found = Pending(
                at=events.position(row),
                event_id=row.id,
                school_id=row.school_id,
                occurred_at=row.occurred_at,
                body=envelopes.envelope(row, entitlement, licence, self.lookups),
            )
            self.built[row.id] = found
        return found


@dataclass
class PushStats:
    """Counters of this process (tests, logs, the bench)."""

    reads: int = 0
    events_read: int = 0
    delivered: int = 0
    lease_rounds: int = 0
    commits: int = 0


class PushService:
    """One per gateway process (started in the app's lifespan)."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: Callable[[], AsyncSession],
        *,
        clock: Clock = utc_now,
        client: PushClient | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.client = client or PushClient(settings)
        self.box = SecretBox(settings.push_secret_key)
        self.owner = owner or f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.tail: Position = START
        self.workers: dict[int, Worker] = {}
        self.stats = PushStats()
        self.lease_until: datetime | None = None
        self._records: list[tuple[store.Delivered, asyncio.Future[bool]]] = []
        self._marks: dict[int, datetime] = {}
        self._recorder: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lease_poke = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._unhook: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = False
        #: Called with (pending items, now) after each delivered batch (the bench).
        self.on_delivered: Callable[[Sequence[Pending], datetime], None] | None = None

    # --- lifecycle ---

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.start_reading()
        self._unhook = events.on_events_committed(self._on_local_commit)
        self.running = True
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="push-leases"))
        self._tasks.append(asyncio.create_task(self._pump_loop(), name="push-reader"))
        self._tasks.append(asyncio.create_task(self._sample_loop(), name="push-metrics"))

    async def start_reading(self) -> None:
        """Begin the shared reader at the stable head (workers catch up to it)."""
        async with self.sessionmaker() as session:
            await read_only(session)
            self.tail = await events.stable_head(session)

    async def stop(self) -> None:
        self.running = False
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        for task in self._tasks:
            task.cancel()
        for worker in self.workers.values():
            if worker.task is not None:
                worker.task.cancel()
        for task in [*self._tasks, *(w.task for w in self.workers.values() if w.task)]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._recorder is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recorder
        held = list(self.workers)
        self.workers.clear()
        with contextlib.suppress(Exception):
            async with self.sessionmaker() as session, session.begin():
                await store.release(session, self.owner, held)
                await store.gone(session, self.owner)
        await self.client.close()

    # --- leases ---

    def lease_valid(self) -> bool:
        """Deliver only while the lease certainly holds (a margin of a tenth)."""
        if self.lease_until is None:
            return False
        margin = timedelta(seconds=self.settings.push_lease_seconds / 10)
        return utc_now() < self.lease_until - margin

    async def refresh_leases(self) -> list[int]:
        """Take or renew leases; start workers for new ones, stop the lost ones,
        reload the configuration of changed ones. Leases run on the wall clock
        of the processes (not the schedule's clock): keep the hosts' clocks in
        step (NTP) when gateways run on several machines."""
        started = utc_now()
        seconds = self.settings.push_lease_seconds
        until = started + timedelta(seconds=seconds)
        async with self.sessionmaker() as session, session.begin():
            # Balanced: each of the processes that deliver takes its share (rounded up).
            limit = await store.share(session, self.owner, started, until, grace=seconds)
            held = await store.acquire(session, self.owner, started, until, limit=limit)
        self.lease_until = until
        self.stats.lease_rounds += 1
        if held and not self.workers:
            # The reader stood still while there was no endpoint: start it at the head
            # (the new workers catch up to it from their cursors).
            await self.start_reading()
        for lost in set(self.workers) - set(held):
            self.lost(lost)
        if held:
            async with self.sessionmaker() as session:
                rows = list(
                    await session.scalars(
                        select(store.PushEndpoint).where(store.PushEndpoint.id.in_(held))
                    )
                )
                roles = await store.delivering_roles(session, {row.supplier_id for row in rows})
                seeding = await store.with_open_seeds(session, held)
            for row in rows:
                worker = self.workers.get(row.id)
                if worker is None:
                    worker = self.workers[row.id] = Worker(self, row, roles[row.supplier_id])
                    if self.running:
                        worker.task = asyncio.create_task(worker.run(), name=f"push-{row.id}")
                elif worker.version != row.config_version:
                    worker.configure(row, roles[row.supplier_id])
                if row.id in seeding:
                    worker.seeds_due = True
                    worker.wake.set()
        return held

    def lost(self, endpoint_id: int) -> None:
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None and worker.task is not None:
            if worker.task is not asyncio.current_task():
                worker.task.cancel()
        log.info("push endpoint %s: lease lost or endpoint disabled", endpoint_id)

    def poke(self, endpoint_id: int | None = None) -> None:
        """Something changed for an endpoint (a seed, a configuration): look soon."""
        if endpoint_id is not None and endpoint_id in self.workers:
            self.workers[endpoint_id].seeds_due = True
            self.workers[endpoint_id].wake.set()
        self._wake.set()
        self._lease_poke.set()

    async def prune_answers(self, now: datetime) -> int:
        """Delete the answers older than `push_answer_retention_days` (any process
        may: it is idempotent), in bounded statements; how many."""
        days = self.settings.push_answer_retention_days
        if days <= 0:
            return 0
        before = now - timedelta(days=days)
        total = 0
        while True:
            async with self.sessionmaker() as session, session.begin():
                deleted = await store.delete_old_answers(session, before, PRUNE_CHUNK)
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    async def _lease_loop(self) -> None:
        interval = self.settings.push_lease_seconds / 3
        pruned = -PRUNE_EVERY
        while True:
            try:
                await self.refresh_leases()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("push leases could not be renewed: %s", error)
            if self.workers and time.monotonic() - pruned >= PRUNE_EVERY:
                pruned = time.monotonic()
                try:
                    deleted = await self.prune_answers(self.clock())
                    if deleted:
                        log.info("push: %s answers past the retention deleted", deleted)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("push answers could not be pruned: %s", error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._lease_poke.wait()
            self._lease_poke.clear()

    # --- the shared reader ---

    def _on_local_commit(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def pump(self) -> int:
        """Read everything readable after the shared position and hand it to the
        synced workers; the number of events read."""
        total = 0
        limit = self.settings.live_batch_size
        while True:
            by_supplier: dict[int, list[Worker]] = {}
            for worker in self.workers.values():
                if worker.synced:
                    by_supplier.setdefault(worker.viewer.supplier_id, []).append(worker)
            routes: list[tuple[Worker, Event]] = []
            async with self.sessionmaker() as session:
                await read_only(session)
                rows = await events.read(session, self.tail, limit)
                facts = events.Facts()
                if rows and by_supplier:
                    facts = await events.load_facts(session, rows, today())
                    for row in rows:
                        for worker in _candidates(row, facts, by_supplier):
                            if worker.wants(row, facts):
                                routes.append((worker, row))
                bodies = await Bodies.load(session, rows, facts) if routes else Bodies(facts)
            self.stats.reads += 1
            if rows:
                end = events.position(rows[-1])
                items: dict[Worker, list[Pending]] = {}
                for worker, row in routes:
                    items.setdefault(worker, []).append(bodies.pending(row))
                # No await from here to the new tail: a worker joins before or after.
                for worker in self.workers.values():
                    if worker.synced:
                        worker.accept(items.get(worker, ()), end)
                self.tail = end
                total += len(rows)
                self.stats.events_read += len(rows)
            if len(rows) < limit:
                return total

    async def _pump_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.push_poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if not self.workers:
                continue
            try:
                await self.pump()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("push reader could not read events: %s", error)
                await asyncio.sleep(1.0)

    # --- recording answered batches: one transaction for all endpoints ---

    async def record(self, batch: store.Delivered) -> bool:
        """Record an answered batch; True once it is committed (False: the lease was
        lost). Batches of many endpoints that are answered meanwhile are committed
        together (a group commit): a worker waits for its own, never for a timer."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._records.append((batch, future))
        self._start_recorder()
        return await future

    def _start_recorder(self) -> None:
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_all(), name="push-recorder")

    def mark_waiting(self, now: datetime) -> int:
        """Show the wait of events that have waited MARK_WAITING_AFTER or longer and
        are not shown yet (written with the next group of answers, before them: an
        answer recorded later still clears it). How many endpoints were marked."""
        marked = 0
        for worker in self.workers.values():
            since = worker.waiting_since()
            if since is None or worker.stored_pending is not None:
                continue
            if waited(now, since) >= MARK_WAITING_AFTER:
                self._marks[worker.id] = since
                worker.stored_pending = since
                marked += 1
        if marked:
            self._start_recorder()
        return marked

    async def _record_all(self) -> None:
        while self._records or self._marks:
            taken, self._records = self._records, []
            marks, self._marks = self._marks, {}
            try:
                async with self.sessionmaker() as session, session.begin():
                    held = await store.record_batches(
                        session, self.owner, [batch for batch, _ in taken], marks
                    )
            except Exception as error:
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.stats.commits += 1
            for batch, future in taken:
                if not future.done():
                    future.set_result(batch.endpoint_id in held)

    def observe(self, batch: Sequence[Pending], now: datetime) -> None:
        self.stats.delivered += len(batch)
        if self.on_delivered is not None:
            self.on_delivered(batch, now)

    def worker(self, endpoint_id: int) -> Worker:
        return self.workers[endpoint_id]

    # --- metrics ---

    def sample_metrics(self) -> tuple[float, dict[str, int]]:
        """The longest wait of an undelivered event and the endpoints by state, of
        the endpoints this process delivers (gateway/metrics.py)."""
        now = self.clock()
        waiting = 0.0
        states = dict.fromkeys(metrics.PUSH_STATES, 0)
        for worker in self.workers.values():
            since = worker.waiting_since()
            if since is not None:
                waiting = max(waiting, waited(now, since))
            if worker.paused_until is not None and waited(now, worker.paused_until) < 0:
                states["paused"] += 1
            elif worker.next_attempt_at is not None and waited(now, worker.next_attempt_at) < 0:
                states["retrying"] += 1
            else:
                states["sending"] += 1
        metrics.observe_push_state(waiting, states)
        return waiting, states

    async def _sample_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.mark_waiting(self.clock())
                self.sample_metrics()
            await asyncio.sleep(1.0)
