"""The entitlement lifecycle's steps as stored (seed 004): lock an entitlement,
write its new status, its recipients' states, its event and audit rows. What a
step may do is `domain.entitlements`' decision and who may take it the use case's
(`services/delivery.py`); everything here runs in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import consented
from db.models import Delivery, Entitlement, EntitlementRecipient
from db.outbox import EventRow, audit, record_events
from domain.entitlements import (
    EntitlementAction,
    EntitlementState,
    EntitlementStatus,
    RecipientRole,
    RecipientState,
    Variant,
)
from domain.errors import DomainError, StatusCode
from domain.events import ENTITLEMENT_EVENT, EventKind
from domain.roles import Actor, DataType, Principal, Role


@dataclass(frozen=True)
class Locked:
    """An entitlement locked for update, with what the transition needs to know.

    `state` is read once, when the row is locked: the ORM updates `row` in place
    when a statement changes it, and an event or audit row must record what the
    entitlement was before the change, not after."""

    row: Entitlement
    seller_id: int
    state: EntitlementState

    @classmethod
    def of(cls, row: Entitlement, seller_id: int) -> Locked:
        return cls(
            row,
            seller_id,
            EntitlementState(
                status=EntitlementStatus(row.status),
                status_before_block=EntitlementStatus(row.status_before_block)
                if row.status_before_block
                else None,
                variant=Variant(row.variant),
                quantity=row.quantity,
                licences_used=row.licences_used,
                activation_until_date=row.activation_until_date,
            ),
        )


async def lock(session: AsyncSession, entitlement_id: int) -> Locked | None:
    """Lock the entitlement row (SELECT … FOR UPDATE on PostgreSQL; SQLite's writer
    lock already serialises); None when there is no such entitlement. Whether the
    caller may change it is the use case's question (`services/delivery.py`)."""
    found = (
        await session.execute(
            select(Entitlement, Delivery.seller_id)
            .join(Delivery, Delivery.id == Entitlement.delivery_id)
            .where(Entitlement.id == entitlement_id)
            .with_for_update(of=Entitlement)
        )
    ).first()
    if found is None:
        return None
    row, seller_id = found
    return Locked.of(row, seller_id)


async def is_recipient(
    session: AsyncSession, entitlement_id: int, supplier_id: int, role: RecipientRole
) -> bool:
    """The entitlement was sent to this supplier in this role."""
    found = await session.scalar(
        select(literal(1)).where(
            EntitlementRecipient.entitlement_id == entitlement_id,
            EntitlementRecipient.supplier_id == supplier_id,
            EntitlementRecipient.role == role.value,
        )
    )
    return found is not None


async def receives(
    session: AsyncSession,
    school_id: int,
    caller: Principal,
    today: date,
    role: Role,
    data_type: DataType,
) -> bool:
    """The school lets this supplier receive `data_type` in `role` on `today`."""
    return bool(
        await session.scalar(select(consented(school_id, caller, today, role, data_type)))
    )


async def _save_status(
    session: AsyncSession, locked: Locked, new: EntitlementState, **extra: Any
) -> None:
    await session.execute(
        update(Entitlement)
        .where(Entitlement.id == locked.row.id)
        .values(
            status=new.status.value,
            status_before_block=new.status_before_block.value if new.status_before_block else None,
            version=Entitlement.version + 1,
            updated_at=func.now(),
            **extra,
        )
    )


async def _set_recipient(
    session: AsyncSession,
    entitlement_id: int,
    supplier_id: int,
    role: RecipientRole,
    state: RecipientState,
    code: int | None = None,
    message: str | None = None,
) -> None:
    await session.execute(
        update(EntitlementRecipient)
        .where(
            EntitlementRecipient.entitlement_id == entitlement_id,
            EntitlementRecipient.supplier_id == supplier_id,
            EntitlementRecipient.role == role.value,
        )
        .values(
            state=state.value, failure_code=code, failure_message=message, updated_at=func.now()
        )
    )


def _event(locked: Locked, kind: EventKind, status: str, **payload: Any) -> EventRow:
    return EventRow(
        kind=kind,
        school_id=locked.row.school_id,
        status=status,
        delivery_id=locked.row.delivery_id,
        entitlement_id=locked.row.id,
        payload=payload or None,
    )


async def apply_action(
    session: AsyncSession, locked: Locked, action: EntitlementAction, actor: Actor
) -> EntitlementStatus:
    """Apply one lifecycle step through the pure state machine and record it."""
    new = locked.state.apply(action)
    await _save_status(session, locked, new)
    role = {
        EntitlementAction.PROVISION: RecipientRole.LICENSOR,
        EntitlementAction.LINK_READY: RecipientRole.PORTAL,
    }.get(action)
    if role is not None and actor.supplier_id is not None:
        await _set_recipient(
            session, locked.row.id, actor.supplier_id, role, RecipientState.CONFIRMED
        )
    await record_events(session, actor, [_event(locked, ENTITLEMENT_EVENT[action], new.status)])
    await audit(
        session,
        actor,
        f"entitlement.{action.value.lower()}",
        "entitlement",
        locked.row.id,
        school_id=locked.row.school_id,
        detail={"from": locked.state.status.value, "to": new.status.value},
    )
    return new.status


async def report_failure(
    session: AsyncSession,
    locked: Locked,
    role: RecipientRole,
    code: StatusCode,
    message: str,
    actor: Actor,
) -> None:
    """A recipient cannot do its step: the entitlement stays where it is and shows
    the failure for this recipient until a corrected message or retry succeeds."""
    assert actor.supplier_id is not None
    await _set_recipient(
        session, locked.row.id, actor.supplier_id, role, RecipientState.FAILED, int(code), message
    )
    await record_events(
        session,
        actor,
        [
            _event(
                locked,
                EventKind.ENTITLEMENT_FAILED,
                locked.state.status.value,
                code=int(code),
                recipientRole=role.value,
                recipientSupplierId=actor.supplier_id,
                message=message,
            )
        ],
    )
    await audit(
        session,
        actor,
        "entitlement.failure",
        "entitlement",
        locked.row.id,
        school_id=locked.row.school_id,
        detail={"code": int(code), "role": role.value},
    )


async def lower_quantity(
    session: AsyncSession, locked: Locked, quantity: int, actor: Actor
) -> None:
    new = locked.state.lower_quantity(quantity)
    # Guarded: an activation racing this statement cannot push licences_used past
    # the new quantity (the activation's own UPDATE is guarded the same way).
    result = await session.execute(
        update(Entitlement)
        .where(Entitlement.id == locked.row.id, Entitlement.licences_used <= quantity)
        .values(quantity=quantity, version=Entitlement.version + 1, updated_at=func.now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise DomainError(
            StatusCode.QUANTITY_NOT_ALLOWED,
            "more licences were activated meanwhile",
            field="quantity",
        )
    await record_events(
        session,
        actor,
        [
            _event(
                locked,
                EventKind.ENTITLEMENT_QUANTITY_LOWERED,
                new.status.value,
                quantity=quantity,
                previousQuantity=locked.state.quantity,
            )
        ],
    )
    await audit(
        session,
        actor,
        "entitlement.lowerQuantity",
        "entitlement",
        locked.row.id,
        school_id=locked.row.school_id,
        detail={"from": locked.state.quantity, "to": quantity},
    )
