"""Delivery (Leveren, seed 004): resolve a delivery specification's identifiers to
facts for `domain.delivery`, persist the entitlements it becomes, and apply the
status transitions of the entitlement lifecycle.

Everything here runs inside the caller's transaction and works in bulk: a
specification with 5,000 named pupils or 500 products costs a handful of
statements (one lookup per kind of identifier, one executemany per table).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import case, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import consent
from db.access import Scope, consented
from db.bulk import force_custom_plans, insert_rows, one_of
from db.models import (
    Contract,
    Delivery,
    Entitlee,
    Entitlement,
    EntitlementRecipient,
    Event,
    Licence,
    Person,
    PersonIdentifier,
    Product,
    SchoolPeriod,
    SchoolSubject,
    TeachingGroup,
)
from db.outbox import Actor, EventRow, audit, record_events
from domain.consent import ConsentMissing
from domain.delivery import (
    BuyerFacts,
    DeliverySpec,
    IdentifierField,
    LicenceTermInput,
    OrderLine,
    PersonRef,
    ProductFacts,
)
from domain.entitlements import (
    ActivationCodeState,
    EntitlementAction,
    EntitlementState,
    EntitlementStatus,
    RecipientRole,
    RecipientState,
    Variant,
    confirmation_action,
    failure_allowed,
    initial_status,
    recipients_for,
)
from domain.errors import DomainError, FieldError, StatusCode
from domain.events import ENTITLEMENT_EVENT, EventKind
from domain.identifiers import (
    IdentifierError,
    OrgLevel,
    PersonIdScheme,
    is_school_scoped,
    parse_eck_id,
    validate_person_identifier,
    validate_product_id,
)
from domain.persons import PersonKind
from domain.products import ProductType
from domain.roles import DataType, Role

# Above this many identifiers a lookup is planned for its actual values (db/bulk.py).
BULK = 100

# --- the request as decoded from GraphQL --------------------------------------------


@dataclass(frozen=True)
class EntiteeRequest:
    eck_id: str | None = None
    user_scheme: str | None = None
    user_value: str | None = None
    activation_code: str | None = None


@dataclass(frozen=True)
class LineRequest:
    product_id: str | None = None
    variant: Variant | None = None
    quantity: int | None = None
    school_subject_id: str | None = None
    group_id: str | None = None
    entitlees: tuple[EntiteeRequest, ...] = ()
    start_date: date | None = None
    activation_until_date: date | None = None
    min_expiration_date: date | None = None
    duration_months: int | None = None
    licence_term_given: bool = False
    # Entitlees beyond this index came in the bulk `eckIds` list.
    explicit_entitlees: int = 0


@dataclass(frozen=True)
class DeliveryRequest:
    reference_id: str | None
    school_id: str | None
    private_person: bool
    buyer_given: bool
    order_number: str | None
    contract_number: str | None
    lines: tuple[LineRequest, ...]


def bulk_paths(
    request: DeliveryRequest, problems: tuple[FieldError, ...] | list[FieldError]
) -> tuple[FieldError, ...]:
    """Report problems of entitlees sent in the bulk `eckIds` list under that list's
    own path (`orderLines.i.eckIds.k`), as the sender wrote them."""
    fixed = []
    for problem in problems:
        parts = (problem.field or "").split(".")
        if len(parts) >= 4 and parts[0] == "orderLines" and parts[2] == "entitlees":
            explicit = request.lines[int(parts[1])].explicit_entitlees
            index = int(parts[3]) if parts[3].isdigit() else -1
            if index >= explicit:
                field = ".".join(["orderLines", parts[1], "eckIds", str(index - explicit)])
                problem = FieldError(problem.code, field, problem.message)
        fixed.append(problem)
    return tuple(fixed)


def message_of(request: DeliveryRequest) -> list[Any]:
    """The request as plain JSON-able data, for the idempotency fingerprint (built
    directly: a generic recursive conversion costs seconds for 5,000 entitlees)."""
    return [
        request.reference_id,
        request.school_id,
        request.private_person,
        request.buyer_given,
        request.order_number,
        request.contract_number,
        [
            [
                line.product_id,
                line.variant,
                line.quantity,
                line.school_subject_id,
                line.group_id,
                line.start_date,
                line.activation_until_date,
                line.min_expiration_date,
                line.duration_months,
                line.licence_term_given,
                [
                    [e.eck_id, e.user_scheme, e.user_value, e.activation_code]
                    for e in line.entitlees
                ],
            ]
            for line in request.lines
        ],
    ]


@dataclass
class ResolvedLine:
    product: Product | None = None
    subject_id: int | None = None
    group_id: int | None = None
    person_ids: list[int | None] = field(default_factory=list)
    codes: list[str | None] = field(default_factory=list)


@dataclass
class Resolved:
    school_id: int | None
    contract_id: int | None
    lines: list[ResolvedLine]
    buyer_person_id: int | None = None


# --- resolving identifiers to facts ---------------------------------------------------------


async def _school(session: AsyncSession, raw: str | None) -> int | None:
    from db.organisations import find

    if not raw or not raw.strip():
        return None
    value = raw.strip()
    rows = await find(session, None, value, OrgLevel.PROVIDER)
    if not rows and value.upper() != value:
        rows = await find(session, None, value.upper(), OrgLevel.PROVIDER)
    return rows[0].id if len(rows) == 1 else None


def _clean_product_id(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return validate_product_id(raw)[0]
    except IdentifierError:
        return None


async def _persons(
    session: AsyncSession, keys: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], tuple[int, str]]:
    """(scheme, scope, value) → (person id, kind), one statement per scheme."""
    by_scheme: dict[tuple[str, str], list[str]] = defaultdict(list)
    for scheme, scope, value in keys:
        by_scheme[(scheme, scope)].append(value)
    found: dict[tuple[str, str, str], tuple[int, str]] = {}
    for (scheme, scope), values in by_scheme.items():
        for start in range(0, len(values), 5000):
            chunk = values[start : start + 5000]
            rows = await session.execute(
                select(PersonIdentifier.value, Person.id, Person.kind)
                .join(Person, Person.id == PersonIdentifier.person_id)
                .where(
                    PersonIdentifier.scheme == scheme,
                    PersonIdentifier.scope == scope,
                    one_of(session, PersonIdentifier.value, chunk),
                    Person.erased_at.is_(None),
                )
            )
            for value, person_id, kind in rows:
                found[(scheme, scope, value)] = (person_id, kind)
    return found


def _entitlee_key(entitlee: EntiteeRequest, school_id: int | None) -> tuple[str, str, str] | None:
    """The normalised lookup key of an entitlee's person identifier, or None when it
    is malformed or absent (then it is simply unknown: code 3)."""
    try:
        if entitlee.eck_id is not None:
            return (PersonIdScheme.ECK_ID.value, "", parse_eck_id(entitlee.eck_id).value)
        if entitlee.user_scheme is not None and entitlee.user_value is not None:
            scheme = PersonIdScheme(entitlee.user_scheme)
            value = validate_person_identifier(scheme, entitlee.user_value)
            scope = str(school_id) if is_school_scoped(scheme) and school_id else ""
            return (scheme.value, scope, value)
    except (IdentifierError, ValueError):
        return None
    return None


async def gather(
    session: AsyncSession, request: DeliveryRequest, seller_id: int, today: date
) -> tuple[DeliverySpec, Resolved]:
    """Resolve every identifier of the request in bulk and describe the outcome as
    facts for `domain.delivery.validate_delivery`."""
    school_id = await _school(session, request.school_id)

    codes = {c for line in request.lines if (c := _clean_product_id(line.product_id))}
    products = (
        {p.code: p for p in await session.scalars(select(Product).where(Product.code.in_(codes)))}
        if codes
        else {}
    )

    subjects: dict[str, int] = {}
    groups: dict[str, int] = {}
    if school_id is not None:
        wanted_subjects = {
            line.school_subject_id for line in request.lines if line.school_subject_id
        }
        if wanted_subjects:
            subjects = dict(
                (
                    await session.execute(
                        select(SchoolSubject.code, SchoolSubject.id).where(
                            SchoolSubject.school_id == school_id,
                            SchoolSubject.code.in_(wanted_subjects),
                        )
                    )
                ).all()
            )
        wanted_groups = {line.group_id for line in request.lines if line.group_id}
        if wanted_groups:
            # A group code is unique per school period; the newest period that has
            # not ended yet is the one a delivery for this school year means.
            rows = await session.execute(
                select(TeachingGroup.code, TeachingGroup.id)
                .join(SchoolPeriod, SchoolPeriod.id == TeachingGroup.period_id)
                .where(
                    TeachingGroup.school_id == school_id,
                    TeachingGroup.code.in_(wanted_groups),
                    SchoolPeriod.end_date >= today,
                )
                .order_by(SchoolPeriod.start_date)
            )
            groups = {code: group_id for code, group_id in rows}

    keys = [[_entitlee_key(e, school_id) for e in line.entitlees] for line in request.lines]
    person_keys = {key for line_keys in keys for key in line_keys if key is not None}
    if len(person_keys) > BULK:
        await force_custom_plans(session)
    persons = await _persons(session, person_keys) if person_keys else {}

    entered_codes = {
        e.activation_code for line in request.lines for e in line.entitlees if e.activation_code
    }
    existing_codes = set()
    if entered_codes:
        existing_codes = set(
            await session.scalars(
                select(Entitlee.activation_code).where(Entitlee.activation_code.in_(entered_codes))
            )
        )

    contract_id = None
    contract_known = None
    contract_problem = None
    if request.contract_number:
        contract = await session.scalar(
            select(Contract).where(
                Contract.seller_id == seller_id,
                Contract.contract_number == request.contract_number,
            )
        )
        contract_known = contract is not None
        if contract is not None:
            contract_id = contract.id
            if contract.school_id is not None and contract.school_id != school_id:
                contract_problem = "the contract is for another school"
            elif contract.valid_from > today or (
                contract.valid_until is not None and contract.valid_until < today
            ):
                contract_problem = "the contract is not valid today"

    spec_lines = []
    resolved_lines = []
    for line, line_keys in zip(request.lines, keys, strict=True):
        code = _clean_product_id(line.product_id)
        product = products.get(code) if code else None
        resolved = ResolvedLine(
            product=product,
            subject_id=subjects.get(line.school_subject_id) if line.school_subject_id else None,
            group_id=groups.get(line.group_id) if line.group_id else None,
        )
        refs = []
        for entitlee, key in zip(line.entitlees, line_keys, strict=True):
            ref, person_id = _person_ref(entitlee, key, persons, existing_codes)
            refs.append(ref)
            resolved.person_ids.append(person_id)
            resolved.codes.append(
                entitlee.activation_code if ref.given is IdentifierField.ACTIVATION_CODE else None
            )
        resolved_lines.append(resolved)
        spec_lines.append(
            OrderLine(
                product_id=line.product_id,
                product=ProductFacts(
                    product_id=product.code,
                    type=ProductType(product.type),
                    publisher_supplier_id=product.publisher_id,
                    sale_start_date=product.sale_start_date,
                    sale_end_date=product.sale_end_date,
                    first_publication_date=product.first_publication_date,
                )
                if product
                else None,
                variant=line.variant,
                quantity=line.quantity,
                subject_given=line.school_subject_id is not None,
                subject_known=resolved.subject_id is not None,
                group_given=line.group_id is not None,
                group_known=resolved.group_id is not None,
                entitlees=tuple(refs),
                start_date=line.start_date,
                activation_until_date=line.activation_until_date,
                licence_term=LicenceTermInput(
                    min_expiration_date=line.min_expiration_date,
                    duration_months=line.duration_months,
                )
                if line.licence_term_given
                else None,
                contract_restriction=contract_problem,
            )
        )
    buyer_person_id = None
    if request.private_person and resolved_lines and resolved_lines[0].person_ids:
        buyer_person_id = resolved_lines[0].person_ids[0]
    spec = DeliverySpec(
        reference_id=request.reference_id,
        buyer=BuyerFacts(
            private_person=request.private_person,
            school_given=bool(request.school_id and request.school_id.strip()),
            school_known=school_id is not None,
        )
        if request.buyer_given
        else None,
        lines=tuple(spec_lines),
        order_number=request.order_number,
        contract_number=request.contract_number,
        contract_known=contract_known,
    )
    return spec, Resolved(school_id, contract_id, resolved_lines, buyer_person_id)


def _person_ref(
    entitlee: EntiteeRequest,
    key: tuple[str, str, str] | None,
    persons: dict[tuple[str, str, str], tuple[int, str]],
    existing_codes: set[str | None],
) -> tuple[PersonRef, int | None]:
    if entitlee.eck_id is not None:
        given = IdentifierField.ECK_ID
    elif entitlee.user_scheme is not None or entitlee.user_value is not None:
        given = IdentifierField.USER_ID
    elif entitlee.activation_code is not None:
        # A code the shop hands out with this delivery: new is fine; one that is
        # already on an entitlement was sold before (51).
        used = entitlee.activation_code in existing_codes
        return PersonRef(
            given=IdentifierField.ACTIVATION_CODE,
            known=True,
            activation_code=entitlee.activation_code,
            activation_code_state=ActivationCodeState.USED if used else None,
        ), None
    else:
        return PersonRef(given=None), None
    match = persons.get(key) if key else None
    if match is None:
        return PersonRef(given=given, known=False), None
    person_id, kind = match
    return PersonRef(given=given, known=True, person_id=person_id, kind=PersonKind(kind)), person_id


# --- persisting a delivery -------------------------------------------------------------------


async def create(
    session: AsyncSession,
    request: DeliveryRequest,
    resolved: Resolved,
    *,
    seller_id: int,
    actor: Actor,
    digest: str,
    today: date,
) -> tuple[int, list[int]]:
    """Write the delivery, one entitlement per order line, its recipients, entitlees,
    a creation event per entitlement and one audit row. Returns the ids."""
    delivery_id = await session.scalar(
        insert(Delivery)
        .values(
            seller_id=seller_id,
            reference_id=request.reference_id,
            request_hash=digest,
            buyer_school_id=resolved.school_id,
            buyer_person_id=resolved.buyer_person_id,
            order_number=request.order_number,
            contract_id=resolved.contract_id,
        )
        .returning(Delivery.id)
    )
    assert delivery_id is not None
    activated: list[tuple[int, RecipientRole]] = []
    if resolved.school_id is not None:
        receivers = await consent.receivers(
            session,
            resolved.school_id,
            DataType.ENTITLEMENTS,
            [Role.PORTAL, Role.DASHBOARD],
            today,
        )
        activated = [
            (supplier_id, RecipientRole.PORTAL if role == Role.PORTAL else RecipientRole.DASHBOARD)
            for supplier_id, role in receivers
        ]

    rows = []
    for line, found in zip(request.lines, resolved.lines, strict=True):
        assert found.product is not None
        assert line.variant is not None
        combined = found.product.publisher_id == seller_id
        rows.append(
            {
                "delivery_id": delivery_id,
                "product_id": found.product.id,
                "variant": line.variant.value,
                "school_id": resolved.school_id,
                "subject_id": found.subject_id,
                "group_id": found.group_id,
                "quantity": line.quantity if line.variant.is_open else None,
                "start_date": line.start_date,
                "activation_until_date": line.activation_until_date,
                "min_expiration_date": line.min_expiration_date,
                "licence_duration_months": line.duration_months,
                "status": initial_status(combined).value,
            }
        )
    ids = list(
        await session.scalars(
            insert(Entitlement).returning(Entitlement.id, sort_by_parameter_order=True), rows
        )
    )

    recipient_rows = []
    entitlee_rows = []
    events = []
    for entitlement_id, row, found in zip(ids, rows, resolved.lines, strict=True):
        assert found.product is not None
        for supplier_id, role in recipients_for(seller_id, found.product.publisher_id, activated):
            recipient_rows.append(
                {
                    "entitlement_id": entitlement_id,
                    "supplier_id": supplier_id,
                    "role": role.value,
                    "state": RecipientState.PENDING.value,
                }
            )
        for person_id, code in zip(found.person_ids, found.codes, strict=True):
            entitlee_rows.append(
                {
                    "entitlement_id": entitlement_id,
                    "person_id": person_id,
                    "activation_code": code,
                    "code_state": ActivationCodeState.UNUSED.value if code else None,
                }
            )
        events.append(
            EventRow(
                kind=EventKind.ENTITLEMENT_CREATED,
                school_id=resolved.school_id,
                status=row["status"],
                delivery_id=delivery_id,
                entitlement_id=entitlement_id,
                payload={
                    "productId": found.product.code,
                    "variant": row["variant"],
                    "quantity": row["quantity"],
                },
            )
        )
    if recipient_rows:
        await session.execute(insert(EntitlementRecipient), recipient_rows)
    if entitlee_rows:
        await insert_rows(session, Entitlee, entitlee_rows)
    await record_events(session, actor, events)
    await audit(
        session,
        actor,
        "deliverySubmit",
        "delivery",
        delivery_id,
        school_id=resolved.school_id,
        detail={
            "referenceId": request.reference_id,
            "entitlements": len(ids),
            "entitlees": len(entitlee_rows),
        },
    )
    return delivery_id, ids


# --- transitions -----------------------------------------------------------------------------


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


def unknown_entitlement(entitlement_id: Any) -> DomainError:
    return DomainError(
        StatusCode.ENTITLEMENT_UNKNOWN,
        f"entitlement {entitlement_id} is unknown",
        field="entitlementId",
    )


async def lock(
    session: AsyncSession,
    entitlement_id: int,
    supplier_id: int,
    role: Role,
    today: date | None = None,
) -> Locked:
    """Lock the entitlement row (SELECT … FOR UPDATE on PostgreSQL; SQLite's writer
    lock already serialises) and check the caller is involved in it in `role`:
    its seller, or one of its recipients. Anyone else gets code 40 as if it did not
    exist, so a supplier learns nothing about other suppliers' deliveries."""
    found = (
        await session.execute(
            select(Entitlement, Delivery.seller_id)
            .join(Delivery, Delivery.id == Entitlement.delivery_id)
            .where(Entitlement.id == entitlement_id)
            .with_for_update(of=Entitlement)
        )
    ).first()
    if found is None:
        raise unknown_entitlement(entitlement_id)
    row, seller_id = found
    if role == Role.SELLER:
        involved = seller_id == supplier_id
    elif role == Role.OPERATOR:
        involved = True
    else:
        recipient_role = {
            Role.LICENSOR: RecipientRole.LICENSOR,
            Role.PORTAL: RecipientRole.PORTAL,
            Role.DASHBOARD: RecipientRole.DASHBOARD,
        }[role]
        involved = (
            await session.scalar(
                select(literal(1)).where(
                    EntitlementRecipient.entitlement_id == entitlement_id,
                    EntitlementRecipient.supplier_id == supplier_id,
                    EntitlementRecipient.role == recipient_role.value,
                )
            )
        ) is not None
    if not involved:
        raise unknown_entitlement(entitlement_id)
    if role in (Role.PORTAL, Role.DASHBOARD) and today is not None and row.school_id is not None:
        # A portal or dashboard acts on a school's entitlement only while the school
        # lets it receive entitlements (a revocation stops it at once).
        scope = Scope(supplier_id, frozenset({role}), None, today)
        if not await session.scalar(
            select(consented(row.school_id, scope, role, DataType.ENTITLEMENTS))
        ):
            raise ConsentMissing(
                "consent required: the school has revoked or never activated the data "
                "exchange ENTITLEMENTS for this supplier, or has no valid processing agreement"
            )
    return Locked.of(row, seller_id)


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


async def confirm(
    session: AsyncSession, locked: Locked, role: RecipientRole, actor: Actor
) -> EntitlementStatus:
    """A recipient confirms its step: the licence office PROVISIONED, a portal
    LINK_READY (a second portal only changes its own recipient state)."""
    action = confirmation_action(role)
    assert action is not None
    return await apply_action(session, locked, action, actor)


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
    if not failure_allowed(role, code):
        raise DomainError(
            StatusCode.OTHER, f"a {role.value} cannot report code {int(code)}", field="code"
        )
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


# --- reads -----------------------------------------------------------------------------------


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
