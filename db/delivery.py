"""Delivery (Leveren, seed 004): resolve a delivery specification's identifiers to
facts for `domain.delivery` (`gather`), and persist the entitlements it becomes
(`create`). Resolution and creation share the resolved rows, so they stay in one
module (about 470 lines). Status changes: `db/entitlement_changes.py`; reads:
`db/delivery_reads.py`.

Everything here runs inside the caller's transaction and works in bulk: a
specification with 5,000 named pupils or 500 products costs a handful of
statements (one lookup per kind of identifier, one executemany per table).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import consent
from db.bulk import force_custom_plans, insert_rows, one_of
from db.models import (
    Contract,
    Delivery,
    Entitlee,
    Entitlement,
    EntitlementRecipient,
    Person,
    PersonIdentifier,
    Product,
    SchoolPeriod,
    SchoolSubject,
    TeachingGroup,
)
from db.outbox import EventRow, audit, record_events
from domain.delivery import (
    BuyerFacts,
    DeliverySpec,
    IdentifierField,
    LicenceTermInput,
    OrderLine,
    PersonRef,
    ProductFacts,
)
from domain.delivery_request import DeliveryRequest, EntiteeRequest
from domain.entitlements import (
    ActivationCodeState,
    RecipientRole,
    RecipientState,
    initial_status,
    recipients_for,
)
from domain.events import EventKind
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
from domain.roles import Actor, DataType, Role

# Above this many identifiers a lookup is planned for its actual values (db/bulk.py).
BULK = 100


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
