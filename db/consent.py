"""Which suppliers a school lets receive a data type (DOMAIN.md §7).

A supplier receives a data type of a school only while the school has an
active (not revoked) activation for it and, for the confidential data types, a
processing agreement (mandate) valid today. Between shop and licence office no
activation is needed: their bilateral contract gives purpose.

Every change is also written to the event stream (`ConsentChange`), so that events
are judged with the consent of the moment they happened (db/visibility.py), and an
open subscription that loses its consent is told (live/broker.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import DataExchange, Organisation, ProcessingAgreement
from db.outbox import record_event
from domain.roles import Actor, DataType, Role
from domain.visibility import ConsentChange


def _valid_mandate(today: Any) -> Any:
    return exists().where(
        ProcessingAgreement.school_id == DataExchange.school_id,
        ProcessingAgreement.supplier_id == DataExchange.supplier_id,
        ProcessingAgreement.valid_from <= today,
        or_(ProcessingAgreement.valid_until.is_(None), ProcessingAgreement.valid_until >= today),
    )


def receivers_statement(school: Any, data_type: DataType, roles: list[Role], today: Any) -> Any:
    """SELECT DISTINCT (supplier id, role) that may receive `data_type` of `school` (a
    value or a column) on `today` (a date or an SQL expression). Also compiled into
    hand-written SQL (db/activation_pg.py), so the rule has one source."""
    statement = select(DataExchange.supplier_id, DataExchange.role).where(
        DataExchange.school_id == school,
        DataExchange.data_type == data_type.value,
        DataExchange.role.in_([r.value for r in roles]),
        DataExchange.revoked_at.is_(None),
    )
    if data_type.confidential:
        statement = statement.where(_valid_mandate(today))
    return statement.distinct()


async def receivers(
    session: AsyncSession, school_id: int, data_type: DataType, roles: list[Role], today: date
) -> list[tuple[int, Role]]:
    """(supplier id, role) pairs that may receive `data_type` of this school today."""
    statement = receivers_statement(school_id, data_type, roles, today)
    rows = await session.execute(statement.order_by(DataExchange.supplier_id))
    return [(supplier_id, Role(role)) for supplier_id, role in rows]


async def may_receive(
    session: AsyncSession,
    school_id: int,
    supplier_id: int,
    role: Role,
    data_type: DataType,
    today: date,
) -> bool:
    statement = select(DataExchange.id).where(
        and_(
            DataExchange.school_id == school_id,
            DataExchange.supplier_id == supplier_id,
            DataExchange.role == role.value,
            DataExchange.data_type == data_type.value,
            DataExchange.revoked_at.is_(None),
        )
    )
    if data_type.confidential:
        statement = statement.where(_valid_mandate(today))
    return (await session.scalar(statement.limit(1))) is not None


# --- managing consent (role school / operator) -------------------------------------


async def exchanges_of(session: AsyncSession, school_id: int) -> list[DataExchange]:
    rows = await session.scalars(
        select(DataExchange)
        .where(DataExchange.school_id == school_id)
        .order_by(DataExchange.supplier_id, DataExchange.data_type, DataExchange.id)
    )
    return list(rows)


async def agreements_of(session: AsyncSession, school_id: int) -> list[ProcessingAgreement]:
    rows = await session.scalars(
        select(ProcessingAgreement)
        .where(ProcessingAgreement.school_id == school_id)
        .order_by(ProcessingAgreement.supplier_id, ProcessingAgreement.valid_from)
    )
    return list(rows)


async def active_exchange(
    session: AsyncSession, school_id: int, supplier_id: int, role: Role, data_type: DataType
) -> DataExchange | None:
    return await session.scalar(
        select(DataExchange)
        .where(
            DataExchange.school_id == school_id,
            DataExchange.supplier_id == supplier_id,
            DataExchange.role == role.value,
            DataExchange.data_type == data_type.value,
            DataExchange.revoked_at.is_(None),
        )
        .with_for_update()
    )


async def add_exchange(
    session: AsyncSession,
    school_id: int,
    supplier_id: int,
    role: Role,
    data_type: DataType,
    by: str,
    actor: Actor,
) -> DataExchange:
    row = DataExchange(
        school_id=school_id,
        supplier_id=supplier_id,
        role=role.value,
        data_type=data_type.value,
        activated_by=by,
    )
    session.add(row)
    await session.flush()
    row.activated_event_id = await _change(
        session, actor, ConsentChange.DATA_EXCHANGE_ACTIVATED, row
    )
    await session.flush()
    await session.refresh(row)
    return row


async def revoke_exchange(session: AsyncSession, row: DataExchange, actor: Actor) -> DataExchange:
    row.revoked_at = await session.scalar(select(func.now()))
    row.revoked_event_id = await _change(session, actor, ConsentChange.DATA_EXCHANGE_REVOKED, row)
    await session.flush()
    return row


async def add_agreement(
    session: AsyncSession,
    school_id: int,
    supplier_id: int,
    reference: str | None,
    valid_from: date,
    valid_until: date | None,
    actor: Actor,
) -> ProcessingAgreement:
    row = ProcessingAgreement(
        school_id=school_id,
        supplier_id=supplier_id,
        reference=reference,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    session.add(row)
    await session.flush()
    row.registered_event_id = await record_event(
        session,
        actor,
        ConsentChange.PROCESSING_AGREEMENT_REGISTERED.value,
        school_id=school_id,
        payload={
            "supplierId": supplier_id,
            "validFrom": valid_from.isoformat(),
            "validUntil": None if valid_until is None else valid_until.isoformat(),
        },
    )
    await session.flush()
    await session.refresh(row)
    return row


async def _change(
    session: AsyncSession, actor: Actor, change: ConsentChange, row: DataExchange
) -> int:
    """The consent change as an event: its place in the stream's order, and what an
    open subscription that loses it is told (the school's RIO id)."""
    rio_id = await session.scalar(
        select(Organisation.rio_id).where(Organisation.id == row.school_id)
    )
    return await record_event(
        session,
        actor,
        change.value,
        school_id=row.school_id,
        payload={
            "supplierId": row.supplier_id,
            "role": row.role,
            "dataType": row.data_type,
            "school": rio_id,
        },
    )
