"""Delivery resolvers: decode the input, call the use case (`services/delivery.py`),
answer with the schema's payload types; and the delivery reads."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from db import access
from db import delivery_reads as store
from domain.consent import ConsentMissing, Disclosure, disclose
from domain.delivery_request import DeliveryRequest, EntiteeRequest, LineRequest
from domain.entitlements import EntitlementAction, RecipientRole
from domain.roles import Role
from resolvers.auth import principal
from resolvers.clock import today
from resolvers.writes import REFUSED, refusal
from schema.delivery import (
    Delivery,
    DeliveryInput,
    DeliverySubmitPayload,
    DeliverySubmitted,
    EntitlementChanged,
    EntitlementChangePayload,
    EntitlementFailureInput,
    EntitlementQuantityInput,
    EntitlementStepInput,
)
from schema.errors import BadInput, entitlement_consent_required
from schema.types import Entitlement
from services import delivery as service
from services.delivery import Change


def decode(input: DeliveryInput) -> DeliveryRequest:
    lines = []
    for line in input.order_lines or []:
        term = line.licence_term
        lines.append(
            LineRequest(
                product_id=line.product_id,
                variant=line.variant,
                quantity=line.quantity,
                school_subject_id=line.school_subject_id,
                group_id=line.group_id,
                entitlees=tuple(
                    EntiteeRequest(
                        eck_id=e.eck_id,
                        user_scheme=e.user_id.scheme.value if e.user_id else None,
                        user_value=e.user_id.value if e.user_id else None,
                        activation_code=e.activation_code,
                    )
                    for e in line.entitlees or []
                )
                + tuple(EntiteeRequest(eck_id=eck_id) for eck_id in line.eck_ids or []),
                explicit_entitlees=len(line.entitlees or []),
                start_date=line.start_date,
                activation_until_date=line.activation_until_date,
                min_expiration_date=term.min_expiration_date if term else None,
                duration_months=term.duration_months if term else None,
                licence_term_given=term is not None,
            )
        )
    return DeliveryRequest(
        reference_id=input.reference_id,
        school_id=input.buyer.school_id if input.buyer else None,
        private_person=input.buyer.private_person if input.buyer else False,
        buyer_given=input.buyer is not None,
        order_number=input.order_number,
        contract_number=input.contract_number,
        lines=tuple(lines),
    )


def _id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def submit(info: Info, input: DeliveryInput) -> DeliverySubmitPayload:

    context = info.context
    caller = await principal(context)
    request = decode(input)
    try:
        row, replayed = await service.submit(
            context.db, caller, request, today(), context.fresh_loaders
        )
    except REFUSED as error:
        return refusal(error, request.reference_id, DeliverySubmitPayload)
    return DeliverySubmitted(delivery=Delivery.from_row(row), replayed=replayed)


async def _step(
    info: Info,
    entitlement_id: Any,
    reference_id: str,
    operation: str,
    message: Any,
    role: Role,
    change: Change,
) -> EntitlementChangePayload:
    """Run one entitlement step as the caller in `role`, idempotently."""

    context = info.context
    caller = await principal(context)
    try:
        pk, replayed = await service.step(
            context.db,
            caller,
            _id(entitlement_id),
            entitlement_id,
            reference_id,
            operation,
            message,
            role,
            change,
            today(),
            context.fresh_loaders,
        )
    except ConsentMissing as missing:
        raise entitlement_consent_required() from missing
    except REFUSED as error:
        return refusal(error, reference_id, EntitlementChangePayload)
    # The entitlement in the answer is read like any read, with the caller's rights
    # of now: a repeated message after the school revoked its consent gets
    # CONSENT_REQUIRED, not the stored or current entitlement.
    changed = await _read_entitlement(info, pk, audit=replayed)
    if changed is None:
        return refusal(service.unknown_entitlement(pk), None, EntitlementChangePayload)
    return EntitlementChanged(entitlement=changed, replayed=replayed)


async def confirm(
    info: Info, input: EntitlementStepInput, role: RecipientRole
) -> EntitlementChangePayload:
    acting = Role.LICENSOR if role == RecipientRole.LICENSOR else Role.PORTAL
    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        f"entitlement.confirm.{role.value}",
        strawberry.asdict(input),
        acting,
        service.confirmation(role),
    )


async def report_failure(info: Info, input: EntitlementFailureInput) -> EntitlementChangePayload:
    caller = await principal(info.context)
    try:
        code = service.failure_code(input.code)
    except REFUSED as error:
        return refusal(error, input.reference_id, EntitlementChangePayload)
    acting = service.reporting_role(caller)
    role = RecipientRole.LICENSOR if acting == Role.LICENSOR else RecipientRole.PORTAL
    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        "entitlement.failure",
        strawberry.asdict(input),
        acting,
        service.failure(role, code, input.message),
    )


async def seller_step(
    info: Info, input: EntitlementStepInput, action: str
) -> EntitlementChangePayload:
    step = EntitlementAction(action)
    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        f"entitlement.{step.value.lower()}",
        strawberry.asdict(input),
        Role.SELLER,
        service.action_change(step),
    )


async def lower_quantity(info: Info, input: EntitlementQuantityInput) -> EntitlementChangePayload:
    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        "entitlement.lowerQuantity",
        strawberry.asdict(input),
        Role.SELLER,
        service.lowered(input.quantity),
    )


# --- reads --------------------------------------------------------------------------------


async def _read_entitlement(info: Info, pk: int, *, audit: bool = True) -> Entitlement | None:
    """One entitlement as the caller may read it now; None for one that does not
    exist or is not the caller's (`domain.consent.disclose`). `audit`: note the read
    in the school's trail (not for the answer to a change, which has its own row;
    a repeated message's answer is a read)."""
    caller, day = await principal(info.context), today()
    answer, row = await info.context.db.run(
        lambda s: access.entitlement_access(s, caller, day, pk)
    )
    match disclose(answer):
        case Disclosure.CONSENT_REQUIRED:
            raise entitlement_consent_required()
        case Disclosure.SHOWN:
            assert row is not None
            if audit:
                info.context.record_read(row.school_id, "read.entitlement", "entitlement", row.id)
            return Entitlement.from_row(row)
    return None


async def entitlement(info: Info, id: Any) -> Entitlement | None:
    pk = _id(id)
    if pk is None:
        return None
    return await _read_entitlement(info, pk)


async def delivery(info: Info, id: Any, reference_id: str | None) -> Delivery | None:

    caller = await principal(info.context)
    if (id is None) == (reference_id is None):
        raise BadInput("give exactly one of `id` or `referenceId`")
    if reference_id is not None:
        row = await info.context.db.run(
            lambda s: store.delivery_by_reference(s, caller.supplier_id, reference_id)
        )
    else:
        pk = _id(id)
        rows = await info.context.db.run(lambda s: store.deliveries_by_ids(s, [pk or -1]))
        row = rows.get(pk or -1)
        if row is not None and not caller.owns(row.seller_id):
            row = None
    return Delivery.from_row(row) if row is not None else None
