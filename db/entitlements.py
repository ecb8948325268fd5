"""Entitlement and licence reads, batched per list of keys for DataLoaders."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from db.dashboard import effective_status
from db.models import Entitlee, Entitlement, EntitlementRecipient, Licence
from domain.entitlements import EntitlementStatus, Variant
from domain.licences import LicenceStatus


def entitlement_list_statement(
    *,
    school_ids: list[int] | None = None,
    product_id: int | None = None,
    delivery_id: int | None = None,
    statuses: list[EntitlementStatus] | None = None,
    variant: Variant | None = None,
    today: date | None = None,
) -> Select[Any]:
    """A status filter matches the status as shown (`effective_status`: ENDED is
    derived, past the activation period), the same SQL the compiled reads use."""
    statement = select(Entitlement)
    if school_ids is not None:
        statement = statement.where(Entitlement.school_id.in_(school_ids))
    if product_id is not None:
        statement = statement.where(Entitlement.product_id == product_id)
    if delivery_id is not None:
        statement = statement.where(Entitlement.delivery_id == delivery_id)
    if variant is not None:
        statement = statement.where(Entitlement.variant == variant.value)
    if statuses and today is not None:
        shown = effective_status(Entitlement.status, Entitlement.activation_until_date, today)
        statement = statement.where(shown.in_([s.value for s in statuses]))
    elif statuses:
        statement = statement.where(Entitlement.status.in_([s.value for s in statuses]))
    return statement


async def by_ids(
    session: AsyncSession, ids: list[int], visible: Any = true()
) -> dict[int, Entitlement]:
    rows = await session.scalars(select(Entitlement).where(Entitlement.id.in_(ids), visible))
    return {row.id: row for row in rows}


async def recipients_for(
    session: AsyncSession, ids: list[int]
) -> dict[int, list[EntitlementRecipient]]:
    rows = await session.scalars(
        select(EntitlementRecipient)
        .where(EntitlementRecipient.entitlement_id.in_(ids))
        .order_by(EntitlementRecipient.role, EntitlementRecipient.supplier_id)
    )
    found: dict[int, list[EntitlementRecipient]] = defaultdict(list)
    for row in rows:
        found[row.entitlement_id].append(row)
    return found


async def entitlees_for(session: AsyncSession, ids: list[int]) -> dict[int, list[Entitlee]]:
    rows = await session.scalars(
        select(Entitlee).where(Entitlee.entitlement_id.in_(ids)).order_by(Entitlee.id)
    )
    found: dict[int, list[Entitlee]] = defaultdict(list)
    for row in rows:
        found[row.entitlement_id].append(row)
    return found


def licence_list_statement(
    *,
    school_ids: list[int] | None = None,
    product_id: int | None = None,
    person_id: int | None = None,
    entitlement_ids: list[int] | None = None,
    status: LicenceStatus | None = None,
    today: date | None = None,
) -> Select[Any]:
    statement = select(Licence)
    if school_ids is not None:
        statement = statement.where(Licence.school_id.in_(school_ids))
    if product_id is not None:
        statement = statement.where(Licence.product_id == product_id)
    if person_id is not None:
        statement = statement.where(Licence.person_id == person_id)
    if entitlement_ids is not None:
        statement = statement.where(Licence.entitlement_id.in_(entitlement_ids))
    if status is not None and today is not None:
        statement = statement.where(licence_status_matches(literal(status.value), today))
    return statement


def licence_status_matches(status: Any, today: Any) -> Any:
    """SQL on `Licence`: the licence is in the (SQL expression) `status` as the list
    filter means it: EXPIRED past expirationDate unless blocked, ACTIVATED until it,
    BLOCKED as stored. One expression for a given status and for a parameter."""
    return or_(
        and_(
            status == LicenceStatus.EXPIRED.value,
            Licence.expiration_date < today,
            Licence.status != LicenceStatus.BLOCKED.value,
        ),
        and_(
            status == LicenceStatus.ACTIVATED.value,
            Licence.status == LicenceStatus.ACTIVATED.value,
            Licence.expiration_date >= today,
        ),
        and_(status == LicenceStatus.BLOCKED.value, Licence.status == LicenceStatus.BLOCKED.value),
    )


async def licences_for_entitlements(
    session: AsyncSession, ids: list[int], limit: int, visible: Any = true()
) -> dict[int, list[Licence]]:
    """The first `limit` licences of each entitlement, in one statement: a window
    function numbers them per entitlement so the database does the cutting."""
    from sqlalchemy import func

    numbered = (
        select(
            Licence.id,
            func.row_number()
            .over(partition_by=Licence.entitlement_id, order_by=Licence.id)
            .label("n"),
        )
        .where(Licence.entitlement_id.in_(ids), visible)
        .subquery()
    )
    rows = await session.scalars(
        select(Licence)
        .join(numbered, numbered.c.id == Licence.id)
        .where(numbered.c.n <= limit)
        .order_by(Licence.entitlement_id, Licence.id)
    )
    found: dict[int, list[Licence]] = defaultdict(list)
    for row in rows:
        found[row.entitlement_id].append(row)
    return found


async def licences_by_ids(
    session: AsyncSession, ids: list[int], visible: Any = true()
) -> dict[int, Licence]:
    rows = await session.scalars(select(Licence).where(Licence.id.in_(ids), visible))
    return {row.id: row for row in rows}


async def licences_for_persons(
    session: AsyncSession, ids: list[int], visible: Any = true()
) -> dict[int, list[Licence]]:
    rows = await session.scalars(
        select(Licence).where(Licence.person_id.in_(ids), visible).order_by(Licence.id)
    )
    found: dict[int, list[Licence]] = defaultdict(list)
    for row in rows:
        if row.person_id is not None:
            found[row.person_id].append(row)
    return found


async def entitlements_for_persons(
    session: AsyncSession, ids: list[int], visible: Any = true()
) -> dict[int, list[Entitlement]]:
    """Individual entitlements naming these persons."""
    rows = await session.execute(
        select(Entitlee.person_id, Entitlement)
        .join(Entitlement, Entitlement.id == Entitlee.entitlement_id)
        .where(Entitlee.person_id.in_(ids), visible)
        .order_by(Entitlement.id)
    )
    found: dict[int, list[Entitlement]] = defaultdict(list)
    for person_id, entitlement in rows:
        if person_id is not None:  # the join on person_id IN (ids) never gives None
            found[person_id].append(entitlement)
    return found
