"""Reads of deliveries: their totals per status (grouped by the database), the
delivery rows, an entitlement's history, a delivery's entitlements."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Delivery, Entitlement, EntitlementRecipient, Event, Licence
from domain.entitlements import EntitlementStatus, RecipientState


@dataclass(frozen=True)
class DeliveryTotals:
    entitlements: int
    entitled: int
    provisioned: int
    link_ready: int
    cancelled: int
    blocked: int
    ended: int
    failed: int
    licensed: int
    expired: int
    quantity: int


def totals_statements(delivery_ids: Any, today: Any) -> tuple[Any, Any]:
    """The two statements of `totals`: per delivery (`delivery_ids` a list or a SQL
    array), its entitlement count, counts per status, failed, licences used and
    quantity; and its expired licences. `today` is a date or a SQL expression (the
    compiled reads embed both statements, compiler/)."""
    ended = (Entitlement.activation_until_date < today) & Entitlement.status.not_in(
        [EntitlementStatus.CANCELLED.value, EntitlementStatus.BLOCKED.value]
    )

    def count_status(status: EntitlementStatus) -> Any:
        return func.sum(case(((Entitlement.status == status.value) & ~ended, 1), else_=0))

    failed = select(EntitlementRecipient.entitlement_id).where(
        EntitlementRecipient.state == RecipientState.FAILED.value
    )
    in_deliveries = (
        Entitlement.delivery_id.in_(delivery_ids)
        if isinstance(delivery_ids, list)
        else Entitlement.delivery_id == func.any(delivery_ids)
    )
    counts = (
        select(
            Entitlement.delivery_id,
            func.count(),
            count_status(EntitlementStatus.ENTITLED),
            count_status(EntitlementStatus.PROVISIONED),
            count_status(EntitlementStatus.LINK_READY),
            count_status(EntitlementStatus.CANCELLED),
            count_status(EntitlementStatus.BLOCKED),
            func.sum(case((ended, 1), else_=0)),
            func.sum(case((Entitlement.id.in_(failed), 1), else_=0)),
            func.sum(Entitlement.licences_used),
            func.sum(func.coalesce(Entitlement.quantity, 0)),
        )
        .where(in_deliveries)
        .group_by(Entitlement.delivery_id)
    )
    expired = (
        select(Entitlement.delivery_id, func.count())
        .join(Licence, Licence.entitlement_id == Entitlement.id)
        .where(in_deliveries, Licence.expiration_date < today)
        .group_by(Entitlement.delivery_id)
    )
    return counts, expired


async def totals(
    session: AsyncSession, delivery_ids: list[int], today: date
) -> dict[int, DeliveryTotals]:
    """Per delivery, entitlements per status and licences, grouped by the database
    (two statements for any number of deliveries)."""
    counts, expired_statement = totals_statements(delivery_ids, today)
    rows = await session.execute(counts)
    expired_rows = await session.execute(expired_statement)
    expired = dict(expired_rows.all())
    found = {}
    for (
        delivery_id,
        n,
        entitled,
        provisioned,
        link_ready,
        cancelled,
        blocked,
        n_ended,
        n_failed,
        licensed,
        quantity,
    ) in rows:
        found[delivery_id] = DeliveryTotals(
            entitlements=n,
            entitled=entitled or 0,
            provisioned=provisioned or 0,
            link_ready=link_ready or 0,
            cancelled=cancelled or 0,
            blocked=blocked or 0,
            ended=n_ended or 0,
            failed=n_failed or 0,
            licensed=licensed or 0,
            expired=expired.get(delivery_id, 0),
            quantity=quantity or 0,
        )
    return found


async def deliveries_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, Delivery]:
    rows = await session.scalars(select(Delivery).where(Delivery.id.in_(ids)))
    return {row.id: row for row in rows}


async def delivery_by_reference(
    session: AsyncSession, seller_id: int, reference_id: str
) -> Delivery | None:
    return await session.scalar(
        select(Delivery).where(
            Delivery.seller_id == seller_id, Delivery.reference_id == reference_id
        )
    )


async def history(session: AsyncSession, entitlement_ids: list[int]) -> dict[int, list[Event]]:
    rows = await session.scalars(
        select(Event)
        .where(Event.entitlement_id.in_(entitlement_ids), Event.licence_id.is_(None))
        .order_by(Event.id)
    )
    found: dict[int, list[Event]] = defaultdict(list)
    for row in rows:
        if row.entitlement_id is not None:
            found[row.entitlement_id].append(row)
    return found


async def entitlements_of_delivery(
    session: AsyncSession, delivery_id: int, visible: Any = None
) -> list[Entitlement]:
    """The delivery's entitlements that `visible` (SQL on Entitlement) lets through."""
    statement = select(Entitlement).where(Entitlement.delivery_id == delivery_id)
    if visible is not None:
        statement = statement.where(visible)
    rows = await session.scalars(statement.order_by(Entitlement.id))
    return list(rows)


async def entitlements_of_deliveries(
    session: AsyncSession, delivery_ids: list[int], visible: Any = None
) -> dict[int, list[Entitlement]]:
    """Per delivery, its entitlements that `visible` (SQL on Entitlement) lets through."""
    statement = select(Entitlement).where(Entitlement.delivery_id.in_(delivery_ids))
    if visible is not None:
        statement = statement.where(visible)
    found: dict[int, list[Entitlement]] = defaultdict(list)
    for row in await session.scalars(statement.order_by(Entitlement.id)):
        found[row.delivery_id].append(row)
    return found
