"""The school in control (DOMAIN.md §7): a school administrator (or the operator)
activates and revokes data exchanges and registers processing agreements. Each
change is one transaction with its audit row; which school the caller may manage
is checked before (`resolvers.auth.managed_school`)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from db import consent as store
from db import suppliers
from db.models import DataExchange, ProcessingAgreement
from db.outbox import audit
from domain.consent import RECEIVERS
from domain.errors import DomainError, StatusCode
from domain.roles import Actor, DataType, Principal, Role
from services.writes import Transactions


def _actor(caller: Principal) -> Actor:
    """A school administrator changes its school's consent; the operator as itself."""
    return caller.acting_as(Role.OPERATOR if caller.is_operator else Role.SCHOOL)


def check_receiver(role: Role, data_type: DataType) -> None:
    """A supplier in `role` can receive `data_type` at all (DOMAIN.md §7)."""
    if role not in RECEIVERS[data_type]:
        raise DomainError(
            StatusCode.OTHER,
            f"a {role.value} does not receive {data_type.value} (DOMAIN.md §7)",
            field="role",
        )


async def _supplier_id(db: Transactions, code: str) -> int:
    found = await db.run(lambda s: suppliers.by_code(s, code))
    if found is None:
        raise DomainError(StatusCode.OTHER, f"no supplier has code {code!r}", field="supplierCode")
    return found[0]


async def _audit_exchange(
    session: AsyncSession,
    caller: Principal,
    action: str,
    row: DataExchange,
    school_id: int,
    supplier_code: str,
    role: Role,
    data_type: DataType,
) -> None:
    await audit(
        session,
        _actor(caller),
        action,
        "data_exchange",
        row.id,
        school_id=school_id,
        detail={"supplier": supplier_code, "role": role.value, "dataType": data_type.value},
    )


async def activate_exchange(
    db: Transactions,
    caller: Principal,
    school_id: int,
    supplier_code: str,
    role: Role,
    data_type: DataType,
) -> tuple[DataExchange, bool]:
    """Let the supplier receive `data_type` in `role`; returns the active exchange and
    whether it was written now (an active one is left as it is)."""
    check_receiver(role, data_type)
    supplier_id = await _supplier_id(db, supplier_code)
    async with db.transaction() as session:
        current = await store.active_exchange(session, school_id, supplier_id, role, data_type)
        if current is not None:
            return current, False
        row = await store.add_exchange(
            session, school_id, supplier_id, role, data_type, caller.supplier_code, _actor(caller)
        )
        await _audit_exchange(
            session, caller, "dataExchange.activate", row, school_id, supplier_code, role, data_type
        )
    return row, True


async def revoke_exchange(
    db: Transactions,
    caller: Principal,
    school_id: int,
    supplier_code: str,
    role: Role,
    data_type: DataType,
) -> DataExchange:
    """Stop the supplier receiving `data_type` in `role`, at once."""
    supplier_id = await _supplier_id(db, supplier_code)
    async with db.transaction() as session:
        current = await store.active_exchange(session, school_id, supplier_id, role, data_type)
        if current is None:
            raise DomainError(
                StatusCode.OTHER, "no active data exchange to revoke", field="dataType"
            )
        row = await store.revoke_exchange(session, current, _actor(caller))
        await _audit_exchange(
            session, caller, "dataExchange.revoke", row, school_id, supplier_code, role, data_type
        )
    return row


async def register_agreement(
    db: Transactions,
    caller: Principal,
    school_id: int,
    supplier_code: str,
    reference: str | None,
    valid_from: date,
    valid_until: date | None,
) -> ProcessingAgreement:
    """Register a processing agreement (the mandate for confidential data)."""
    if valid_until is not None and valid_until < valid_from:
        raise DomainError(StatusCode.OTHER, "validUntil lies before validFrom", field="validUntil")
    supplier_id = await _supplier_id(db, supplier_code)
    async with db.transaction() as session:
        row = await store.add_agreement(
            session, school_id, supplier_id, reference, valid_from, valid_until, _actor(caller)
        )
        await audit(
            session,
            _actor(caller),
            "processingAgreement.register",
            "processing_agreement",
            row.id,
            school_id=school_id,
            detail={"supplier": supplier_code, "reference": reference},
        )
    return row
