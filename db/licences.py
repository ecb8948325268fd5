"""A licence's own life after its activation (DOMAIN.md §5, Licence): the seller or
the licence office blocks and unblocks it, and who holds a licence to a product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.activation import LICENCE_COLUMNS, LicenceRow, ProductRef, licence_row, recipients, watchers
from db.models import Delivery, Entitlement, Licence, Product
from db.outbox import EventRow, audit, record_events
from domain.entitlements import EntitlementStatus
from domain.events import LICENCE_EVENT
from domain.licences import LicenceAction, LicenceStatus, transition
from domain.roles import Actor

# --- blocking one licence ------------------------------------------------------------------


@dataclass(frozen=True)
class LockedLicence:
    row: LicenceRow
    seller_id: int
    publisher_id: int
    delivery_id: int


async def lock_licence(session: AsyncSession, licence_id: int) -> LockedLicence | None:
    """The licence with its seller and publisher, locked against a concurrent block."""
    row = (
        await session.execute(
            select(*LICENCE_COLUMNS, Delivery.seller_id, Product.publisher_id, Delivery.id)
            .join(Entitlement, Entitlement.id == Licence.entitlement_id)
            .join(Delivery, Delivery.id == Entitlement.delivery_id)
            .join(Product, Product.id == Licence.product_id)
            .where(Licence.id == licence_id)
            .with_for_update(of=Licence)
        )
    ).first()
    if row is None:
        return None
    return LockedLicence(
        licence_row(row), seller_id=row[8], publisher_id=row[9], delivery_id=row[10]
    )


async def change_licence(
    session: AsyncSession, locked: LockedLicence, action: LicenceAction, actor: Actor, today: date
) -> LicenceRow:
    """Block or unblock one licence through the state machine; event and audit row in
    the same transaction. Raises ``TransitionNotAllowed`` (99)."""
    new = transition(locked.row.status, action)
    await session.execute(
        update(Licence)
        .where(Licence.id == locked.row.id)
        .values(status=new.value, updated_at=func.now())
    )
    watching = (
        await watchers(session, locked.row.school_id, today)
        if locked.row.school_id is not None
        else []
    )
    if locked.publisher_id != locked.seller_id:
        watching.insert(0, {"supplierId": locked.publisher_id, "role": "LICENSOR"})
    await record_events(
        session,
        actor,
        [
            EventRow(
                kind=LICENCE_EVENT[action],
                school_id=locked.row.school_id,
                status=new.value,
                delivery_id=locked.delivery_id,
                entitlement_id=locked.row.entitlement_id,
                licence_id=locked.row.id,
                payload={"recipients": recipients(locked.seller_id, watching)},
            )
        ],
    )
    await audit(
        session,
        actor,
        f"licence.{action.value.lower()}",
        "licence",
        locked.row.id,
        school_id=locked.row.school_id,
        detail={"from": locked.row.status.value, "to": new.value},
    )
    return replace(locked.row, status=new)


# --- reads -----------------------------------------------------------------------------------


def holders_condition(school_ids: Any, product_ids: Any, today: Any) -> Any:
    """SQL on `Licence`: licences at one of the schools that give access to one of the
    products today (the product itself or a set or combi containing it,
    `ProductRef.ids`): ACTIVATED, not past expirationDate, with a holder, and on an
    entitlement that is not BLOCKED. The ids are anything `in_` takes (the compiled
    reads give selects)."""
    return and_(
        Licence.school_id.in_(school_ids),
        Licence.product_id.in_(product_ids),
        Licence.status == LicenceStatus.ACTIVATED.value,
        Licence.expiration_date >= today,
        Licence.person_id.is_not(None),
        exists().where(
            Entitlement.id == Licence.entitlement_id,
            Entitlement.status != EntitlementStatus.BLOCKED.value,
        ),
    )


def holders_statement(school_ids: Sequence[int], product: ProductRef, today: date) -> Any:
    """The licences of `holders_condition` for one product."""
    return select(Licence).where(holders_condition(school_ids, product.ids, today))
