"""The delivery use cases (Leveren, seed 004): submit a delivery specification, and
the entitlement lifecycle's steps (a recipient's confirmation or failure, the
seller's cancel, block, unblock and lower quantity).

Each is one transaction through `services/writes.py`, idempotent by the sender's
referenceId: resolve the identifiers (`db/delivery.py`), let `domain.delivery`
validate, persist; or lock the entitlement, check the caller is involved in it,
let `domain.entitlements` decide the step, persist (`db/entitlement_changes.py`).
Refusals are raised as `DomainError` (a typed payload), `ReferenceConflict` or
`ConsentMissing`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import delivery as store
from db import delivery_reads as reads
from db import entitlement_changes as changes
from db.entitlement_changes import Locked
from db.idempotency import request_hash
from db.models import Delivery
from domain.consent import ConsentMissing
from domain.delivery import validate_delivery
from domain.delivery_request import DeliveryRequest, bulk_paths, message_of
from domain.entitlements import (
    EntitlementAction,
    RecipientRole,
    confirmation_action,
    failure_allowed,
)
from domain.errors import DomainError, FieldError, StatusCode, ValidationFailed
from domain.roles import Actor, DataType, Principal, Role
from services.writes import Transactions, run_once

#: The recipient role a supplier acts in when it takes a step in `role`.
RECIPIENT_ROLE = {
    Role.LICENSOR: RecipientRole.LICENSOR,
    Role.PORTAL: RecipientRole.PORTAL,
    Role.DASHBOARD: RecipientRole.DASHBOARD,
}

Change = Callable[[AsyncSession, Locked, Actor], Awaitable[Any]]


def unknown_entitlement(entitlement_id: Any) -> DomainError:
    return DomainError(
        StatusCode.ENTITLEMENT_UNKNOWN,
        f"entitlement {entitlement_id} is unknown",
        field="entitlementId",
    )


async def _problems(
    session: AsyncSession, request: DeliveryRequest, seller_id: int, day: date
) -> tuple[FieldError, ...]:
    spec, _resolved = await store.gather(session, request, seller_id, day)
    return bulk_paths(request, validate_delivery(spec, day))


async def submit(
    db: Transactions,
    caller: Principal,
    request: DeliveryRequest,
    day: date,
    changed: Callable[[], None] | None = None,
) -> tuple[Delivery, bool]:
    """Submit a delivery specification: every problem at once (`ValidationFailed`),
    or the delivery with its entitlements, recipients, events and audit row.
    Returns the delivery and whether the answer is a repeated message's."""
    if not request.reference_id or not request.reference_id.strip():
        # Without a reference id nothing can be deduplicated: report it together with
        # every other problem, without writing.
        problems = await db.run(lambda s: _problems(s, request, caller.supplier_id, day))
        raise ValidationFailed(problems)
    message = message_of(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        spec, resolved = await store.gather(session, request, caller.supplier_id, day)
        problems = validate_delivery(spec, day)
        if problems:
            raise ValidationFailed(bulk_paths(request, problems))
        delivery_id, ids = await store.create(
            session,
            request,
            resolved,
            seller_id=caller.supplier_id,
            actor=caller.acting_as(Role.SELLER),
            digest=request_hash(message),
            today=day,
        )
        return {"deliveryId": delivery_id, "entitlementIds": ids}

    answer, replayed = await run_once(
        db, caller, "deliverySubmit", request.reference_id, message, work, changed
    )
    delivery_id = answer["deliveryId"]
    found = await db.run(lambda s: reads.deliveries_by_ids(s, [delivery_id]))
    return found[delivery_id], replayed


async def lock(
    session: AsyncSession, entitlement_id: int, caller: Principal, role: Role, day: date
) -> Locked:
    """Lock the entitlement and check the caller is involved in it in `role`: its
    seller, or one of its recipients. Anyone else gets code 40 as if it did not
    exist, so a supplier learns nothing about other suppliers' deliveries."""
    locked = await changes.lock(session, entitlement_id)
    if locked is None:
        raise unknown_entitlement(entitlement_id)
    if role == Role.SELLER:
        involved = locked.seller_id == caller.supplier_id
    elif role == Role.OPERATOR:
        involved = True
    else:
        involved = await changes.is_recipient(
            session, entitlement_id, caller.supplier_id, RECIPIENT_ROLE[role]
        )
    if not involved:
        raise unknown_entitlement(entitlement_id)
    school_id = locked.row.school_id
    if role in (Role.PORTAL, Role.DASHBOARD) and school_id is not None:
        # A portal or dashboard acts on a school's entitlement only while the school
        # lets it receive entitlements (a revocation stops it at once).
        if not await changes.receives(
            session, school_id, caller, day, role, DataType.ENTITLEMENTS
        ):
            raise ConsentMissing(
                "consent required: the school has revoked or never activated the data "
                "exchange ENTITLEMENTS for this supplier, or has no valid processing agreement"
            )
    return locked


async def step(
    db: Transactions,
    caller: Principal,
    entitlement_id: int | None,
    given_id: Any,
    reference_id: str,
    operation: str,
    message: Any,
    role: Role,
    change: Change,
    day: date,
    changed: Callable[[], None] | None = None,
) -> tuple[int, bool]:
    """Take one entitlement step as the caller in `role`, idempotently. Returns the
    entitlement's id and whether the answer is a repeated message's."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        if entitlement_id is None:
            raise unknown_entitlement(given_id)
        locked = await lock(session, entitlement_id, caller, role, day)
        await change(session, locked, caller.acting_as(role))
        return {"entitlementId": entitlement_id}

    answer, replayed = await run_once(db, caller, operation, reference_id, message, work, changed)
    return answer["entitlementId"], replayed


def confirmation(role: RecipientRole) -> Change:
    """A recipient confirms its step: the licence office PROVISIONED, a portal
    LINK_READY (a second portal only changes its own recipient state)."""
    action = confirmation_action(role)
    assert action is not None
    return action_change(action)


def action_change(action: EntitlementAction) -> Change:
    """One lifecycle step through the pure state machine."""

    async def change(session: AsyncSession, locked: Locked, who: Actor) -> None:
        await changes.apply_action(session, locked, action, who)

    return change


def failure(role: RecipientRole, code: StatusCode, message: str) -> Change:
    """A recipient cannot do its step: the entitlement stays where it is and shows
    the failure for this recipient until a corrected message or retry succeeds."""

    async def change(session: AsyncSession, locked: Locked, who: Actor) -> None:
        if not failure_allowed(role, code):
            raise DomainError(
                StatusCode.OTHER, f"a {role.value} cannot report code {int(code)}", field="code"
            )
        await changes.report_failure(session, locked, role, code, message, who)

    return change


def lowered(quantity: int) -> Change:
    async def change(session: AsyncSession, locked: Locked, who: Actor) -> None:
        await changes.lower_quantity(session, locked, quantity, who)

    return change


def failure_code(code: int) -> StatusCode:
    """The agreed status code a failure report names; a DomainError otherwise."""
    try:
        return StatusCode(code)
    except ValueError:
        raise DomainError(
            StatusCode.OTHER, f"{code} is not an agreed status code", field="code"
        ) from None


def reporting_role(caller: Principal) -> Role:
    """A supplier that is both licence office and portal reports as licence office."""
    return Role.LICENSOR if Role.LICENSOR in caller.roles else Role.PORTAL
