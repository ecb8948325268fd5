"""Writing events (the outbox) and audit rows, always inside the caller's
transaction so they commit or roll back with the change they describe.

On PostgreSQL each event records the writing transaction's id
(`pg_current_xact_id()`); the subscription reader uses it to never pass a
transaction that has not committed yet. SQLite serialises writers, so the row id
alone is commit order there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, literal_column
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditLog, Event
from domain.events import EventKind


@dataclass(frozen=True)
class Actor:
    """Who caused a change: the supplier and the role it acted in."""

    supplier_id: int | None
    role: str | None


@dataclass(frozen=True)
class EventRow:
    kind: EventKind
    school_id: int | None
    status: str | None = None
    delivery_id: int | None = None
    entitlement_id: int | None = None
    licence_id: int | None = None
    payload: dict[str, Any] | None = None


def _tx_id(session: AsyncSession) -> Any:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return literal_column("pg_current_xact_id()::text::bigint")
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
    await session.execute(insert(Event).values(tx_id=_tx_id(session)), rows)


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
