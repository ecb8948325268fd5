"""A licence's own steps (DOMAIN.md §6): its shop or its licence office blocks or
unblocks one licence, in one transaction, idempotent by referenceId. Activation
itself is `services/activation.py`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import licences
from domain.errors import DomainError, StatusCode
from domain.licences import LicenceAction
from domain.roles import Principal, Role
from services.writes import Transactions, run_write


def unknown_licence(licence_id: Any) -> DomainError:
    return DomainError(
        StatusCode.ENTITLEMENT_UNKNOWN, f"licence {licence_id} is unknown", field="licenceId"
    )


async def change(
    db: Transactions,
    caller: Principal,
    licence_id: int,
    action: LicenceAction,
    reference_id: str | None,
    message: Callable[[], Any],
    day: date,
    changed: Callable[[], None] | None = None,
) -> tuple[int, bool]:
    """Block or unblock the licence; returns its id and whether the answer is a
    repeated message's."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        locked = await licences.lock_licence(session, licence_id)
        # The seller of the entitlement's delivery, or the product's licence office;
        # anyone else is told the licence does not exist (code 40), never that it does.
        if locked is None:
            raise unknown_licence(licence_id)
        if caller.is_operator:
            role = Role.OPERATOR
        elif caller.has(Role.SELLER) and locked.seller_id == caller.supplier_id:
            role = Role.SELLER
        elif caller.has(Role.LICENSOR) and locked.publisher_id == caller.supplier_id:
            role = Role.LICENSOR
        else:
            raise unknown_licence(licence_id)
        row = await licences.change_licence(session, locked, action, caller.acting_as(role), day)
        return {"licenceId": row.id}

    answer, replayed = await run_write(
        db, caller, f"licence{action.value.title()}", reference_id, message, work, changed
    )
    return answer["licenceId"], replayed
