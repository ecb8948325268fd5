"""Delivery resolvers: decode the input, resolve identifiers through `db/`,
validate with `domain.delivery`, persist in one idempotent transaction, and
answer with the schema's payload types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.types import Info

from db import access
from db import delivery as store
from db.idempotency import ReferenceConflict, request_hash
from domain.consent import ConsentMissing, Disclosure, disclose
from domain.delivery import validate_delivery
from domain.entitlements import EntitlementAction, RecipientRole
from domain.errors import DomainError, FieldError, StatusCode, ValidationFailed
from domain.roles import Role
from resolvers.auth import Principal, principal
from resolvers.clock import today
from resolvers.writes import actor, run_once
from schema.errors import entitlement_consent_required
from schema.payloads import conflict_payload, error_payload
from schema.types import Entitlement

if TYPE_CHECKING:
    from schema.delivery import (
        Delivery,
        DeliveryInput,
        DeliveryTotals,
        EntitlementFailureInput,
        EntitlementQuantityInput,
        EntitlementStepInput,
    )


def decode(input: DeliveryInput) -> store.DeliveryRequest:
    lines = []
    for line in input.order_lines or []:
        term = line.licence_term
        lines.append(
            store.LineRequest(
                product_id=line.product_id,
                variant=line.variant,
                quantity=line.quantity,
                school_subject_id=line.school_subject_id,
                group_id=line.group_id,
                entitlees=tuple(
                    store.EntiteeRequest(
                        eck_id=e.eck_id,
                        user_scheme=e.user_id.scheme.value if e.user_id else None,
                        user_value=e.user_id.value if e.user_id else None,
                        activation_code=e.activation_code,
                    )
                    for e in line.entitlees or []
                )
                + tuple(store.EntiteeRequest(eck_id=eck_id) for eck_id in line.eck_ids or []),
                explicit_entitlees=len(line.entitlees or []),
                start_date=line.start_date,
                activation_until_date=line.activation_until_date,
                min_expiration_date=term.min_expiration_date if term else None,
                duration_months=term.duration_months if term else None,
                licence_term_given=term is not None,
            )
        )
    return store.DeliveryRequest(
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


async def submit(info: Info, input: DeliveryInput) -> Any:
    from schema.delivery import Delivery, DeliverySubmitted

    context = info.context
    caller = await principal(context)
    request = decode(input)
    message = store.message_of(request)
    day = today()

    async def work(session: Any) -> dict[str, Any]:
        spec, resolved = await store.gather(session, request, caller.supplier_id, day)
        problems = validate_delivery(spec, day)
        if problems:
            raise ValidationFailed(store.bulk_paths(request, problems))
        delivery_id, ids = await store.create(
            session,
            request,
            resolved,
            seller_id=caller.supplier_id,
            actor=actor(caller, Role.SELLER.value),
            digest=request_hash(message),
            today=day,
        )
        return {"deliveryId": delivery_id, "entitlementIds": ids}

    if not request.reference_id or not request.reference_id.strip():
        # Without a reference id nothing can be deduplicated: report it together with
        # every other problem, without writing.
        problems = await context.db.run(
            lambda s: _problems_only(s, request, caller.supplier_id, day)
        )
        return error_payload(ValidationFailed(problems))
    try:
        answer, replayed = await run_once(
            context, caller, "deliverySubmit", request.reference_id, message, work
        )
    except ReferenceConflict as conflict:
        return conflict_payload(request.reference_id, str(conflict))
    except DomainError as error:
        return error_payload(error)
    row = (await context.db.run(lambda s: store.deliveries_by_ids(s, [answer["deliveryId"]])))[
        answer["deliveryId"]
    ]
    return DeliverySubmitted(delivery=Delivery.from_row(row), replayed=replayed)


async def _problems_only(
    session: Any, request: store.DeliveryRequest, seller_id: int, day: Any
) -> tuple[FieldError, ...]:
    spec, _resolved = await store.gather(session, request, seller_id, day)
    return store.bulk_paths(request, validate_delivery(spec, day))


async def _step(
    info: Info,
    entitlement_id: Any,
    reference_id: str,
    operation: str,
    message: Any,
    role: Role,
    change: Any,
) -> Any:
    """Run one entitlement step as the caller in `role`, idempotently."""
    from schema.delivery import EntitlementChanged

    context = info.context
    caller: Principal = await principal(context)
    pk = _id(entitlement_id)

    async def work(session: Any) -> dict[str, Any]:
        if pk is None:
            raise store.unknown_entitlement(entitlement_id)
        locked = await store.lock(session, pk, caller.supplier_id, role, today())
        await change(session, locked, actor(caller, role.value))
        return {"entitlementId": pk}

    try:
        answer, replayed = await run_once(context, caller, operation, reference_id, message, work)
    except ConsentMissing as missing:
        raise entitlement_consent_required() from missing
    except ReferenceConflict as conflict:
        return conflict_payload(reference_id, str(conflict))
    except DomainError as error:
        return error_payload(error)
    # The entitlement in the answer is read like any read, with the caller's rights
    # of now: a repeated message after the school revoked its consent gets
    # CONSENT_REQUIRED, not the stored or current entitlement.
    changed = await _read_entitlement(info, answer["entitlementId"], audit=replayed)
    if changed is None:
        return error_payload(store.unknown_entitlement(answer["entitlementId"]))
    return EntitlementChanged(entitlement=changed, replayed=replayed)


async def confirm(info: Info, input: EntitlementStepInput, role: RecipientRole) -> Any:
    acting = Role.LICENSOR if role == RecipientRole.LICENSOR else Role.PORTAL

    async def change(session: Any, locked: store.Locked, who: Any) -> None:
        await store.confirm(session, locked, role, who)

    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        f"entitlement.confirm.{role.value}",
        strawberry.asdict(input),
        acting,
        change,
    )


async def report_failure(info: Info, input: EntitlementFailureInput) -> Any:
    caller = await principal(info.context)
    try:
        code = StatusCode(input.code)
    except ValueError:
        return error_payload(
            DomainError(
                StatusCode.OTHER, f"{input.code} is not an agreed status code", field="code"
            )
        )
    # A supplier that is both licence office and portal reports as licence office.
    acting = Role.LICENSOR if Role.LICENSOR in caller.roles else Role.PORTAL
    role = RecipientRole.LICENSOR if acting == Role.LICENSOR else RecipientRole.PORTAL

    async def change(session: Any, locked: store.Locked, who: Any) -> None:
        await store.report_failure(session, locked, role, code, input.message, who)

    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        "entitlement.failure",
        strawberry.asdict(input),
        acting,
        change,
    )


async def seller_step(info: Info, input: EntitlementStepInput, action: str) -> Any:
    step = EntitlementAction(action)

    async def change(session: Any, locked: store.Locked, who: Any) -> None:
        await store.apply_action(session, locked, step, who)

    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        f"entitlement.{step.value.lower()}",
        strawberry.asdict(input),
        Role.SELLER,
        change,
    )


async def lower_quantity(info: Info, input: EntitlementQuantityInput) -> Any:
    async def change(session: Any, locked: store.Locked, who: Any) -> None:
        await store.lower_quantity(session, locked, input.quantity, who)

    return await _step(
        info,
        input.entitlement_id,
        input.reference_id,
        "entitlement.lowerQuantity",
        strawberry.asdict(input),
        Role.SELLER,
        change,
    )


# --- reads --------------------------------------------------------------------------------


async def _read_entitlement(info: Info, pk: int, *, audit: bool = True) -> Entitlement | None:
    """One entitlement as the caller may read it now; None for one that does not
    exist or is not the caller's (`domain.consent.disclose`). `audit`: note the read
    in the school's trail (not for the answer to a change, which has its own row;
    a repeated message's answer is a read)."""
    scope = (await principal(info.context)).scope
    answer, row = await info.context.db.run(lambda s: access.entitlement_access(s, scope, pk))
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
    from schema.delivery import Delivery

    caller = await principal(info.context)
    if (id is None) == (reference_id is None):
        from schema.errors import BadInput

        raise BadInput("give exactly one of `id` or `referenceId`")
    if reference_id is not None:
        row = await info.context.db.run(
            lambda s: store.delivery_by_reference(s, caller.supplier_id, reference_id)
        )
    else:
        pk = _id(id)
        rows = await info.context.db.run(lambda s: store.deliveries_by_ids(s, [pk or -1]))
        row = rows.get(pk or -1)
        if row is not None and row.seller_id != caller.supplier_id and not caller.is_operator:
            row = None
    return Delivery.from_row(row) if row is not None else None


async def delivery_totals(info: Info, delivery_pk: int) -> DeliveryTotals:
    from schema.delivery import DeliveryTotals

    found = await info.context.db.run(lambda s: store.totals(s, [delivery_pk], today()))
    totals = found.get(delivery_pk)
    if totals is None:
        return DeliveryTotals(
            entitlements=0,
            entitled=0,
            provisioned=0,
            link_ready=0,
            cancelled=0,
            blocked=0,
            ended=0,
            failed=0,
            licensed=0,
            expired=0,
            quantity=0,
        )
    return DeliveryTotals(**totals.__dict__)


async def delivery_entitlements(info: Info, delivery_pk: int) -> list[Entitlement]:
    scope = (await principal(info.context)).scope
    rows = await info.context.db.run(
        lambda s: store.entitlements_of_delivery(s, delivery_pk, access.entitlement_scope(scope))
    )
    return [Entitlement.from_row(r) for r in rows]
