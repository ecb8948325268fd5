"""Writing events (the outbox) and audit rows, always inside the caller's
transaction so they commit or roll back with the change they describe.

On PostgreSQL each event records its position in the stream (`event_position`),
and its transaction holds the event-writer lock until it ends; the subscription
reader (db/events.py) waits for exactly those transactions, so it never passes an
event that has not committed yet and is not held back by unrelated work. SQLite
serialises writers, so the row id alone is commit order there.

A session that wrote events is marked (`EVENTS_WRITTEN` in `session.info`), so
that after its commit the process's live broker is woken at once (db/events.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, literal_column
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditLog, Event
from domain.events import EventKind
from domain.roles import Actor

log = logging.getLogger("ketenpoort.events")


@dataclass(frozen=True)
class EventRow:
    kind: EventKind
    school_id: int | None
    status: str | None = None
    delivery_id: int | None = None
    entitlement_id: int | None = None
    licence_id: int | None = None
    payload: dict[str, Any] | None = None


#: `session.info` key: this transaction wrote events (read by db/events.py).
EVENTS_WRITTEN = "ketenpoort_events_written"

_committed: list[Callable[[], None]] = []


def on_events_committed(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` whenever events were committed in this process; returns the
    function that unregisters it (the live broker's wake-up)."""
    _committed.append(callback)
    return lambda: _committed.remove(callback) if callback in _committed else None


def events_committed() -> None:
    """Events were committed: after a session's commit (db/events.py does this), or
    by a statement that wrote events in autocommit mode (call it after that)."""
    for callback in list(_committed):
        try:
            callback()
        except Exception:  # a wake-up must never fail the committed change
            log.exception("live wake-up failed")


# Where an event sits in the stream (PostgreSQL), evaluated once per statement: the
# database function `event_position()` (migration 0005) gives the transaction its id,
# takes the shared event-writer lock that the reader's horizon waits for
# (db/events.py), and returns the greater of that id and the xmax of a snapshot taken
# after the lock. An event written after another transaction committed therefore sorts
# after that transaction's events (a transaction takes its id at its first write, so an
# older id can still write later), and never below the horizon of a reader that did not
# see this transaction hold the lock. Needs READ COMMITTED, PostgreSQL's default.
#
# Every statement that inserts into `event` on PostgreSQL must set `tx_id` to this
# fragment, also hand-written SQL: an event written without it may be skipped by the
# live stream.
PG_EVENT_POSITION = "(SELECT event_position())"


def event_position(session: AsyncSession) -> Any:
    """The value of `event.tx_id` for an insert in this session's transaction:
    `PG_EVENT_POSITION` on PostgreSQL, 0 on SQLite (writers are serialised there, so
    the row id alone is commit order)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return literal_column(PG_EVENT_POSITION)
    return 0


async def record_events(session: AsyncSession, actor: Actor, events: Sequence[EventRow]) -> None:
    """Insert events in one statement (executemany), in the order given."""
    if not events:
        return
    rows = [
        {
            "kind": e.kind.value,
            "school_id": e.school_id,
            "status": e.status,
            "delivery_id": e.delivery_id,
            "entitlement_id": e.entitlement_id,
            "licence_id": e.licence_id,
            "payload": e.payload,
            "actor_supplier_id": actor.supplier_id,
            "actor_role": actor.role,
        }
        for e in events
    ]
    await session.execute(insert(Event).values(tx_id=event_position(session)), rows)
    session.info[EVENTS_WRITTEN] = True


async def record_event(session: AsyncSession, actor: Actor, kind: str, **row: Any) -> int:
    """Insert one event of any kind (a consent change, db/consent.py) and return its
    id: `row` holds the other columns (school_id, payload, ...)."""
    event_id = await session.scalar(
        insert(Event)
        .values(
            tx_id=event_position(session),
            kind=kind,
            actor_supplier_id=actor.supplier_id,
            actor_role=actor.role,
            **row,
        )
        .returning(Event.id)
    )
    session.info[EVENTS_WRITTEN] = True
    assert event_id is not None
    return int(event_id)


async def events_written(session: AsyncSession) -> None:
    """For a statement that wrote events itself (not through `record_events`): the
    broker is woken after the commit, or at once when the statement ran in
    autocommit mode (there is no commit to wait for then)."""
    connection = (await session.connection()).sync_connection
    assert connection is not None
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        events_committed()
    else:
        session.info[EVENTS_WRITTEN] = True


async def audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | int | None,
    *,
    school_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        insert(AuditLog).values(
            supplier_id=actor.supplier_id,
            role=actor.role,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            school_id=school_id,
            detail=detail,
        )
    )
