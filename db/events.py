"""Reading the event table as one ordered stream (DOMAIN.md §8): the SQL behind
live subscriptions. One module (about 460 lines): every statement here relies on the
position rule below, which is stated once.

Position. Every event has a position (`tx_id`, `id`) that all readers see in the
same order, and nothing can later appear behind a position a reader has passed:

* PostgreSQL: `tx_id` is the writing transaction's position (db/outbox.py,
  `event_position()`), and a transaction that writes events holds the shared
  event-writer lock until it ends. A reader first asks for the horizon
  (`event_horizon()`, migration 0005): the next transaction id, lowered to the
  oldest id among the lock's holders. Every event below it has committed or never
  will, so a later statement sees all of them and a transaction that commits late
  can never land behind the reader. Only event writers hold the stream back: a
  bulk load, a report or an idle session in another database, or a transaction on
  other tables of this one, does not. An event-writing transaction that stays open
  holds back the events of the transactions that wrote after it started, until it
  ends (keep them short; `idle_in_transaction_session_timeout` ends a forgotten
  one).
* SQLite: writers are serialised (BEGIN IMMEDIATE, db/engine.py), so the row id is
  commit order and `tx_id` is 0.

Wake-up. After a session that wrote events commits, the callbacks registered
with `on_events_committed` run (the process's broker reads at once); other
processes learn of it through PostgreSQL NOTIFY sent by this process's broker, and
a periodic read covers anything else.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, event, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from db.access import RECIPIENT_ROLE, entitlement_scope
from db.engine import read_only
from db.entitlements import entitlement_list_statement
from db.models import (
    Entitlement,
    EntitlementRecipient,
    Event,
)
from db.outbox import EVENTS_WRITTEN, events_committed, on_events_committed
from db.pagination import InvalidCursor, event_cursor
from db.visibility import Facts, load_facts
from domain.consent import Access
from domain.entitlements import EntitlementStatus
from domain.events import EventKind
from domain.roles import DataType, Principal, Role

log = logging.getLogger("ketenpoort.events")

#: A position in the stream: (transaction position, event id).
Position = tuple[int, int]
START: Position = (0, 0)

#: PostgreSQL channel the brokers of all gateway processes LISTEN on.
CHANNEL = "ketenpoort_events"

#: The events that move an entitlement into the status they carry.
STATUS_KINDS = frozenset(
    {
        EventKind.ENTITLEMENT_CREATED.value,
        EventKind.ENTITLEMENT_PROVISIONED.value,
        EventKind.ENTITLEMENT_LINK_READY.value,
        EventKind.ENTITLEMENT_CANCELLED.value,
        EventKind.ENTITLEMENT_BLOCKED.value,
        EventKind.ENTITLEMENT_UNBLOCKED.value,
    }
)


def position(row: Event) -> Position:
    return (row.tx_id, row.id)


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


# --- what a subscriber asks for ------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """Which events a subscription wants; every given condition must hold."""

    delivery_id: int | None = None
    entitlement_id: int | None = None
    school_ids: frozenset[int] | None = None
    #: Entitlements reaching this status (events in STATUS_KINDS carrying it).
    status: str | None = None
    kinds: frozenset[str] | None = None
    #: The schools a delivery's or an entitlement's events are of (not a filter):
    #: whose revocation ends the subscription. None with `school_ids`: any school.
    schools: frozenset[int] | None = field(default=None, compare=False)

    @property
    def of_schools(self) -> frozenset[int] | None:
        """The schools whose events the subscription can receive; None: any."""
        return self.school_ids if self.school_ids is not None else self.schools

    @property
    def data_type(self) -> DataType:
        """What the subscription is for: activations, or entitlements (with their
        licences' events)."""
        if self.kinds is not None and all(EventKind(k).about_licence for k in self.kinds):
            return DataType.ACTIVATIONS
        return DataType.ENTITLEMENTS

    def matches(self, row: Event) -> bool:
        if self.delivery_id is not None and row.delivery_id != self.delivery_id:
            return False
        if self.entitlement_id is not None and row.entitlement_id != self.entitlement_id:
            return False
        if self.school_ids is not None and row.school_id not in self.school_ids:
            return False
        if self.status is not None and (row.kind not in STATUS_KINDS or row.status != self.status):
            return False
        return self.kinds is None or row.kind in self.kinds

    def condition(self) -> Any:
        """The same test as SQL on `Event`."""
        conditions = []
        if self.delivery_id is not None:
            conditions.append(Event.delivery_id == self.delivery_id)
        if self.entitlement_id is not None:
            conditions.append(Event.entitlement_id == self.entitlement_id)
        if self.school_ids is not None:
            conditions.append(Event.school_id.in_(sorted(self.school_ids)))
        if self.status is not None:
            conditions.append(Event.kind.in_(sorted(STATUS_KINDS)))
            conditions.append(Event.status == self.status)
        if self.kinds is not None:
            conditions.append(Event.kind.in_(sorted(self.kinds)))
        return conditions


# --- reading the stream --------------------------------------------------------------------


def _after(session: AsyncSession, after: Position) -> Any:
    if _is_postgres(session):
        return tuple_(Event.tx_id, Event.id) > tuple_(after[0], after[1])
    return Event.id > after[1]


def _at_most(session: AsyncSession, upto: Position) -> Any:
    if _is_postgres(session):
        return tuple_(Event.tx_id, Event.id) <= tuple_(upto[0], upto[1])
    return Event.id <= upto[1]


def _ordered(session: AsyncSession, statement: Select[Any]) -> Select[Any]:
    if _is_postgres(session):
        return statement.order_by(Event.tx_id, Event.id)
    return statement.order_by(Event.id)


async def horizon(session: AsyncSession) -> int | None:
    """PostgreSQL: every event with `tx_id` below this has committed or never will,
    so a statement sent after this one sees all of them (see the module docstring).
    None on SQLite, where every committed event can be read. The session must read
    in READ COMMITTED (each statement its own snapshot), as `read_only` sessions do."""
    if not _is_postgres(session):
        return None
    return int(await session.scalar(text("SELECT event_horizon()")))


async def read(
    session: AsyncSession,
    after: Position,
    limit: int,
    *,
    upto: Position | None = None,
    topic: Topic | None = None,
    below: int | None = None,
) -> list[Event]:
    """Up to `limit` events after `after` in stream order, only from transactions
    that can no longer be overtaken: below the horizon (`below`, asked for here when
    not given); with `upto`, no further than that position instead (a replay up to
    where the live stream begins, which is below a horizon already)."""
    statement = select(Event).where(_after(session, after))
    if upto is not None:
        statement = statement.where(_at_most(session, upto))
    elif _is_postgres(session):
        if below is None:
            below = await horizon(session)
        statement = statement.where(Event.tx_id < below)
    if topic is not None:
        statement = statement.where(*topic.condition())
    rows = await session.scalars(_ordered(session, statement).limit(limit))
    return list(rows)


async def held_back(session: AsyncSession, after: Position, below: int | None = None) -> bool:
    """Are there committed events after `after` that `read` may not pass yet,
    because an event writer that started before them is still open? (PostgreSQL
    only.)"""
    if not _is_postgres(session):
        return False
    if below is None:
        below = await horizon(session)
    found = await session.scalar(
        select(Event.id).where(_after(session, after), Event.tx_id >= below).limit(1)
    )
    return found is not None


async def stable_head(session: AsyncSession, below: int | None = None) -> Position:
    """The last position no transaction can fall behind any more: where a reader
    that starts now begins."""
    statement = select(Event.tx_id, Event.id)
    if _is_postgres(session):
        if below is None:
            below = await horizon(session)
        statement = statement.where(Event.tx_id < below).order_by(
            Event.tx_id.desc(), Event.id.desc()
        )
    else:
        statement = statement.order_by(Event.id.desc())
    found = (await session.execute(statement.limit(1))).first()
    return (found[0], found[1]) if found else START


async def resume_problem(session: AsyncSession, after: Position, oldest: datetime) -> str | None:
    """Why a subscription cannot resume after `after` (None: it can): the position
    must be one this gateway handed out, and not older than the replay window."""
    if after == START:
        first = await session.scalar(select(func.min(Event.occurred_at)))
        if first is not None and _aware(first) < oldest:
            return _too_old(oldest)
        return None
    found = (
        await session.execute(select(Event.tx_id, Event.occurred_at).where(Event.id == after[1]))
    ).first()
    if found is None or found[0] != after[0]:
        return "unknown cursor: it is not the cursor of an event of this gateway"
    if _aware(found[1]) < oldest:
        return _too_old(oldest)
    return None


def _too_old(oldest: datetime) -> str:
    return (
        f"cursor too old: events before {oldest:%Y-%m-%d %H:%M} UTC are not replayed; "
        "subscribe with initialState: true for the current state"
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- the current state ("initial seed") ------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """A point in the stream that a reader resumes after: every event at or before
    `at`, and the later events in `reflected`. An event's own cursor is a cut with
    nothing reflected; an initial state's cursor may reflect events that committed
    while an older event writer was still open (PostgreSQL), so that resuming
    after it repeats none of them and loses none of the older writer's."""

    at: Position
    reflected: frozenset[int] = frozenset()

    def covers(self, position: Position, event_id: int) -> bool:
        return position <= self.at or event_id in self.reflected


#: The most events an initial state's cursor reflects beyond its position; more
#: means a long event-writing transaction is open (see `snapshot`).
MAX_REFLECTED = 1000
_MAX_CURSOR = 16_384
_MAX_POSITION = 2**63 - 1


def cut_cursor(cut: Cut) -> str:
    """The cursor a client resumes with: an event cursor, or one that also names the
    reflected events (`ev:tx:id:r1.r2…`)."""
    if not cut.reflected:
        return event_cursor(*cut.at)
    text = f"ev:{cut.at[0]}:{cut.at[1]}:" + ".".join(str(i) for i in sorted(cut.reflected))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cut(cursor: str) -> Cut:
    """The cut a cursor names; InvalidCursor when it is not one this gateway gives
    (checked in time linear in its length)."""
    if len(cursor) > _MAX_CURSOR:
        raise InvalidCursor(f"malformed event cursor: longer than {_MAX_CURSOR} characters")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode("ascii").split(":")
        if parts[0] != "ev" or len(parts) not in (3, 4):
            raise ValueError(parts[0])
        numbers = [parts[1], parts[2], *(parts[3].split(".") if len(parts) == 4 else ())]
        if len(numbers) > 2 + MAX_REFLECTED or not all(
            n.isdigit() and len(n) <= 19 for n in numbers
        ):
            raise ValueError("numbers")
        values = [int(n) for n in numbers]
        if any(v > _MAX_POSITION for v in values):
            raise ValueError("range")
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        shown = cursor if len(cursor) <= 40 else cursor[:40] + "…"
        raise InvalidCursor(f"malformed event cursor {shown!r}") from exc
    return Cut((values[0], values[1]), frozenset(values[2:]))


@dataclass(frozen=True)
class Snapshot:
    """Entitlements as they are at `cut`: every event the cut covers is reflected,
    no other event is."""

    rows: list[Entitlement]
    cut: Cut
    truncated: bool


class HeldBack(Exception):
    """An initial state would reflect more than MAX_REFLECTED events beyond the
    stream's position: an event-writing transaction has been open for long."""


async def snapshot(
    session: AsyncSession,
    statement: Select[Any],
    limit: int,
    topic: Topic | None = None,
    *,
    below: int | None = None,
) -> Snapshot:
    """Read `statement` (entitlements) and the stream position in ONE snapshot.
    The session must not have begun. On PostgreSQL every event below the horizon
    `below` is visible to the snapshot taken after it was read (REPEATABLE READ:
    every statement sees that snapshot); without one it is asked for first, in a
    transaction of its own. The events of `topic` above it that the snapshot sees
    are reflected by the cut. SQLite's WAL gives a read transaction one snapshot
    from its first statement, and serialised writers leave nothing to reflect."""
    if _is_postgres(session):
        if below is None:
            await read_only(session)
            below = await horizon(session)
            await session.commit()
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
    else:
        below = None
        await read_only(session)
    rows = list(await session.scalars(statement.order_by(Entitlement.id).limit(limit + 1)))
    at = await stable_head(session, below)
    reflected: frozenset[int] = frozenset()
    if below is not None:
        seen = select(Event.id).where(Event.tx_id >= below)
        if topic is not None:
            seen = seen.where(*topic.condition())
        reflected = frozenset(await session.scalars(seen.limit(MAX_REFLECTED + 1)))
        if len(reflected) > MAX_REFLECTED:
            raise HeldBack(f"more than {MAX_REFLECTED} events wait behind an open transaction")
    return Snapshot(rows[:limit], Cut(at, reflected), len(rows) > limit)


# --- wake-up after local commits -----------------------------------------------------------


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(EVENTS_WRITTEN, False):
        events_committed()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(EVENTS_WRITTEN, None)


async def notify(connection: Any, sender: str) -> None:
    """Tell the other processes' brokers (asyncpg connection, autocommit)."""
    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, sender)


# --- what a subscription may ask for ----------------------------------------------------------


def snapshot_statement(caller: Principal, topic: Topic, today: date) -> Select[Any]:
    """The entitlements an initial state sends: those of the topic the caller may
    see, by the same rule as the `entitlements` list (db/access.py)."""
    statement = entitlement_list_statement(
        school_ids=sorted(topic.school_ids) if topic.school_ids is not None else None,
        delivery_id=topic.delivery_id,
        statuses=[EntitlementStatus(topic.status)] if topic.status is not None else None,
        today=today,
    )
    if topic.entitlement_id is not None:
        statement = statement.where(Entitlement.id == topic.entitlement_id)
    return statement.where(entitlement_scope(caller, today))


async def topic_schools(
    session: AsyncSession, *, delivery_id: int | None = None, entitlement_id: int | None = None
) -> frozenset[int]:
    """The schools of a delivery's entitlements, or of one entitlement."""
    statement = select(Entitlement.school_id).where(Entitlement.school_id.is_not(None))
    if delivery_id is not None:
        statement = statement.where(Entitlement.delivery_id == delivery_id)
    if entitlement_id is not None:
        statement = statement.where(Entitlement.id == entitlement_id)
    return frozenset(await session.scalars(statement.distinct()))


async def delivery_access_and_schools(
    session: AsyncSession, caller: Principal, today: date, delivery_id: int
) -> tuple[Access, frozenset[int]]:
    """`delivery_access`, and the delivery's schools (`topic_schools`) when allowed:
    one session for both."""
    access = await delivery_access(session, caller, today, delivery_id)
    if access is not Access.ALLOWED:
        return access, frozenset()
    return access, await topic_schools(session, delivery_id=delivery_id)


async def delivery_access(
    session: AsyncSession, caller: Principal, today: date, delivery_id: int
) -> Access:
    """ALLOWED when the caller may see an entitlement of the delivery;
    CONSENT_REQUIRED when it is a recipient of one but the school withholds
    consent; NOT_INVOLVED otherwise (also for an unknown delivery: nothing leaks)."""
    visible = await session.scalar(
        select(Entitlement.id)
        .where(Entitlement.delivery_id == delivery_id, entitlement_scope(caller, today))
        .limit(1)
    )
    if visible is not None:
        return Access.ALLOWED
    roles = [RECIPIENT_ROLE[r].value for r in caller.roles if r in (Role.PORTAL, Role.DASHBOARD)]
    if roles and await session.scalar(
        select(EntitlementRecipient.entitlement_id)
        .join(Entitlement, Entitlement.id == EntitlementRecipient.entitlement_id)
        .where(
            Entitlement.delivery_id == delivery_id,
            EntitlementRecipient.supplier_id == caller.supplier_id,
            EntitlementRecipient.role.in_(roles),
        )
        .limit(1)
    ):
        return Access.CONSENT_REQUIRED
    return Access.NOT_INVOLVED


# Who may see which event lives in db/visibility.py; the stream's readers (the live
# broker, the push deliverer) find it here too.
__all__ = ["Facts", "load_facts", "on_events_committed"]
