"""Test data inserted directly through the ORM: products, pupils and teachers with
their enrolments and memberships, entitlements in any state, licences.

Everything gets fresh identifiers (random ECK iDs, new EANs), so tests can add it
next to the demo without changing what other tests count. Call
``await session.commit()`` before a GraphQL call: each call closes the session,
which would roll back uncommitted rows (with the test fixtures the commit only
releases a savepoint; the test's outer transaction still rolls everything back).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum import ean

from db.models import (
    Delivery,
    Enrolment,
    Entitlee,
    Entitlement,
    GroupMembership,
    Licence,
    Organisation,
    Person,
    PersonIdentifier,
    Product,
    ProductComponent,
    SchoolPeriod,
    SchoolSubject,
    SubjectEnrolment,
    Supplier,
    TeachingGroup,
)
from domain.entitlements import ActivationCodeState, EntitlementStatus, Variant
from domain.identifiers import PersonIdScheme, Sector
from domain.licences import LicenceStatus
from domain.persons import PersonKind
from domain.products import ProductType
from resolvers.clock import today

_rng = random.Random()


T = TypeVar("T")


def _detached(session: AsyncSession, row: T) -> T:
    """Keep the loaded values but leave the session's identity map: the gateway's
    statements in the same test session must not be answered from a stale copy."""
    session.expunge(row)
    return row


def new_eck_id() -> str:
    return "https://ketenid.nl/pilot/" + secrets.token_hex(64)


def new_ean() -> str:
    body = "97899" + f"{_rng.randrange(10**7):07d}"
    return body + ean.calc_check_digit(body)


async def supplier_id(session: AsyncSession, code: str) -> int:
    found = await session.scalar(select(Supplier.id).where(Supplier.code == code))
    assert found is not None, code
    return found


async def school_id(session: AsyncSession, rio_id: str = "104A158") -> int:
    found = await session.scalar(select(Organisation.id).where(Organisation.rio_id == rio_id))
    assert found is not None, rio_id
    return found


async def current_period(session: AsyncSession, school: int) -> int:
    day = today()
    found = await session.scalar(
        select(SchoolPeriod.id).where(
            SchoolPeriod.school_id == school,
            SchoolPeriod.start_date <= day,
            SchoolPeriod.end_date >= day,
        )
    )
    if found is not None:
        return found
    start = date(day.year if day.month >= 8 else day.year - 1, 8, 1)
    return await make_period(session, school, start, date(start.year + 1, 7, 31))


async def make_period(session: AsyncSession, school: int, start: date, end: date) -> int:
    period = SchoolPeriod(
        school_id=school, code=f"P-{secrets.token_hex(4)}", start_date=start, end_date=end
    )
    session.add(period)
    await session.flush()
    return period.id


async def make_group(session: AsyncSession, school: int, period: int | None = None) -> int:
    period = period or await current_period(session, school)
    code = f"G-{secrets.token_hex(3)}"
    group = TeachingGroup(school_id=school, period_id=period, code=code, name=f"Groep {code}")
    session.add(group)
    await session.flush()
    return group.id


async def make_subject(session: AsyncSession, school: int) -> int:
    code = f"S-{secrets.token_hex(3)}"
    subject = SchoolSubject(school_id=school, code=code, name=f"Vak {code}")
    session.add(subject)
    await session.flush()
    return subject.id


async def make_product(
    session: AsyncSession,
    *,
    publisher: str = "demo-publisher",
    type: ProductType = ProductType.DIGITAL,
    components: Iterable[int] = (),
) -> Product:
    product = Product(
        code=new_ean(),
        name=f"Testproduct {secrets.token_hex(3)}",
        type=type.value,
        publisher_id=await supplier_id(session, publisher),
    )
    session.add(product)
    await session.flush()
    for component in components:
        session.add(ProductComponent(product_id=product.id, component_id=component))
    await session.flush()
    return _detached(session, product)


@dataclass(frozen=True)
class MadePerson:
    id: int
    eck_id: str | None
    identifiers: tuple[tuple[str, str], ...]


async def make_person(
    session: AsyncSession,
    *,
    school: int | None,
    kind: PersonKind = PersonKind.PUPIL,
    period: int | None = None,
    groups: Iterable[int] = (),
    subjects: Iterable[int] = (),
    eck_id: bool | None = None,
    nepri: str | None = None,
    sector: Sector | None = Sector.VO,
) -> MadePerson:
    """A pupil (ECK iD) or teacher (NEPRI), enrolled at ``school`` in its current period
    (or ``period``), in the given groups and subjects."""
    with_eck = kind is PersonKind.PUPIL if eck_id is None else eck_id
    person = Person(kind=kind.value, sector=sector.value if with_eck and sector else None)
    session.add(person)
    await session.flush()
    identifiers: list[tuple[str, str]] = []
    eck = new_eck_id() if with_eck else None
    if eck:
        identifiers.append((PersonIdScheme.ECK_ID.value, eck))
    if nepri is None and kind is PersonKind.TEACHER:
        nepri = f"docent-{secrets.token_hex(4)}@testschool"
    if nepri:
        identifiers.append((PersonIdScheme.NEPRI.value, nepri))
    for scheme, value in identifiers:
        session.add(PersonIdentifier(person_id=person.id, scheme=scheme, scope="", value=value))
    if school is not None:
        period = period or await current_period(session, school)
        session.add(Enrolment(person_id=person.id, school_id=school, period_id=period))
        for subject in subjects:
            session.add(SubjectEnrolment(person_id=person.id, subject_id=subject, period_id=period))
    for group in groups:
        session.add(GroupMembership(person_id=person.id, group_id=group))
    await session.flush()
    return MadePerson(person.id, eck, tuple(identifiers))


async def make_entitlement(
    session: AsyncSession,
    *,
    product: Product,
    variant: Variant,
    school: int | None,
    seller: str = "demo-shop",
    status: EntitlementStatus = EntitlementStatus.LINK_READY,
    quantity: int | None = None,
    licences_used: int = 0,
    start: date | None = None,
    until: date | None = None,
    min_expiration_date: date | None = None,
    duration_months: int | None = None,
    group: int | None = None,
    subject: int | None = None,
    entitlees: Iterable[int] = (),
    codes: Iterable[tuple[str, ActivationCodeState]] = (),
) -> Entitlement:
    day = today()
    delivery = Delivery(
        seller_id=await supplier_id(session, seller),
        reference_id=f"test-{secrets.token_hex(6)}",
        request_hash="test",
        buyer_school_id=school,
        buyer_person_id=next(iter(entitlees), None) if school is None else None,
    )
    session.add(delivery)
    await session.flush()
    if quantity is None and variant.is_open:
        quantity = 30
    if min_expiration_date is None and duration_months is None:
        min_expiration_date = day + timedelta(days=300)
    entitlement = Entitlement(
        delivery_id=delivery.id,
        product_id=product.id,
        variant=variant.value,
        school_id=school,
        subject_id=subject,
        group_id=group,
        quantity=quantity,
        licences_used=licences_used,
        start_date=start or day - timedelta(days=10),
        activation_until_date=until or day + timedelta(days=60),
        min_expiration_date=min_expiration_date,
        licence_duration_months=duration_months,
        status=status.value,
        status_before_block=EntitlementStatus.LINK_READY.value
        if status is EntitlementStatus.BLOCKED
        else None,
    )
    session.add(entitlement)
    await session.flush()
    # Addressed like a real delivery (db/delivery.create): the licence office and every
    # portal and dashboard the school activated, so consent-scoped reads see it.
    await _address(session, entitlement, product, delivery.seller_id, school, day)
    for person in entitlees:
        session.add(Entitlee(entitlement_id=entitlement.id, person_id=person))
    for code, state in codes:
        session.add(
            Entitlee(entitlement_id=entitlement.id, activation_code=code, code_state=state.value)
        )
    await session.flush()
    return _detached(session, entitlement)


async def make_licence(
    session: AsyncSession,
    *,
    entitlement: Entitlement,
    person: int,
    status: LicenceStatus = LicenceStatus.ACTIVATED,
    expiration_date: date | None = None,
) -> Licence:
    licence = Licence(
        entitlement_id=entitlement.id,
        person_id=person,
        product_id=entitlement.product_id,
        school_id=entitlement.school_id,
        status=status.value,
        expiration_date=expiration_date or today() + timedelta(days=200),
    )
    session.add(licence)
    await session.execute(
        update(Entitlement)
        .where(Entitlement.id == entitlement.id)
        .values(licences_used=Entitlement.licences_used + 1)
    )
    await session.flush()
    return _detached(session, licence)


async def _address(
    session: AsyncSession,
    entitlement: Entitlement,
    product: Product,
    seller_id: int,
    school: int | None,
    day: date,
) -> None:
    from db.consent import receivers
    from db.models import EntitlementRecipient
    from domain.entitlements import RecipientRole, RecipientState, recipients_for
    from domain.roles import DataType, Role

    activated = []
    if school is not None:
        for supplier, role in await receivers(
            session, school, DataType.ENTITLEMENTS, [Role.PORTAL, Role.DASHBOARD], day
        ):
            activated.append(
                (supplier, RecipientRole.PORTAL if role == Role.PORTAL else RecipientRole.DASHBOARD)
            )
    for supplier, role in recipients_for(seller_id, product.publisher_id, activated):
        session.add(
            EntitlementRecipient(
                entitlement_id=entitlement.id,
                supplier_id=supplier,
                role=role.value,
                state=RecipientState.CONFIRMED.value,
            )
        )


async def grant_consent(
    session: AsyncSession,
    *,
    school: int,
    supplier: int,
    role: str,
    data_types: Iterable[str],
    mandate: bool = True,
) -> None:
    """The school activates `data_types` for the supplier in `role` and, with
    `mandate`, registers a processing agreement valid from today."""
    from db.models import DataExchange, ProcessingAgreement

    for data_type in data_types:
        session.add(
            DataExchange(
                school_id=school,
                supplier_id=supplier,
                role=role,
                data_type=data_type,
                activated_by="test",
            )
        )
    if mandate:
        session.add(
            ProcessingAgreement(
                school_id=school, supplier_id=supplier, reference="test", valid_from=today()
            )
        )
    await session.flush()
