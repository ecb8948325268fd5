"""The consent rules of `domain/consent.py` as SQL, so lists are filtered by the
database (never in Python) and single reads can tell "no consent" from "not
yours".

The caller is `domain.roles.Principal`: the supplier, the roles its token grants,
and for a school administrator the school; `today` is the day the rules apply on
(a processing agreement is valid on a day). The `*_scope` functions return a
condition that is true for the rows the caller may see; `school_access` gives the
decision (`domain.consent.decide`) when a caller names a school.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import String, and_, cast, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    DataExchange,
    Delivery,
    Enrolment,
    Entitlee,
    Entitlement,
    EntitlementRecipient,
    Licence,
    Person,
    PersonIdentifier,
    ProcessingAgreement,
    Product,
)
from domain.consent import (
    Access,
    ConsentFacts,
    best,
    decide,
    needs_activation,
    needs_mandate,
    person_access,
)
from domain.entitlements import RecipientRole
from domain.roles import DataType, Principal, Role

RECIPIENT_ROLE = {
    Role.LICENSOR: RecipientRole.LICENSOR,
    Role.PORTAL: RecipientRole.PORTAL,
    Role.DASHBOARD: RecipientRole.DASHBOARD,
}


def activated(school: Any, supplier_id: int, role: Role, data_type: DataType) -> Any:
    return exists().where(
        DataExchange.school_id == school,
        DataExchange.supplier_id == supplier_id,
        DataExchange.role == role.value,
        DataExchange.data_type == data_type.value,
        DataExchange.revoked_at.is_(None),
    )


def mandated(school: Any, supplier_id: int, today: date) -> Any:
    return exists().where(
        ProcessingAgreement.school_id == school,
        ProcessingAgreement.supplier_id == supplier_id,
        ProcessingAgreement.valid_from <= today,
        or_(ProcessingAgreement.valid_until.is_(None), ProcessingAgreement.valid_until >= today),
    )


def consented(school: Any, caller: Principal, today: date, role: Role, data_type: DataType) -> Any:
    """SQL: the school (a column or value) gave this caller, in `role`, what
    `data_type` needs (activation and/or mandate; nothing for the exemptions)."""
    conditions = []
    if needs_activation(role, data_type):
        conditions.append(activated(school, caller.supplier_id, role, data_type))
    if needs_mandate(role, data_type):
        conditions.append(mandated(school, caller.supplier_id, today))
    return and_(true(), *conditions)


def _recipient_of(caller: Principal, role: Role) -> Any:
    # A probe of the recipient's primary key per entitlement. As `IN (SELECT …)` (or a
    # plain EXISTS) PostgreSQL makes it a semi-join and, for a school's first page,
    # merge-joins from the first recipient row on: every entitlement of the schools
    # before it, a cost that grows with the table (bench/RESULTS.md, "Figures moved
    # out of code comments"). OFFSET 0 keeps the EXISTS a per-row subplan.
    return exists(
        select(EntitlementRecipient.entitlement_id)
        .where(
            EntitlementRecipient.entitlement_id == Entitlement.id,
            EntitlementRecipient.supplier_id == caller.supplier_id,
            EntitlementRecipient.role == RECIPIENT_ROLE[role].value,
        )
        .offset(0)
        # Only the entitlement comes from outside, also where the outer query joins
        # entitlement_recipient itself.
        .correlate(Entitlement)
    )


def _entitlement_conditions(
    caller: Principal, consent: tuple[DataType, date] | None
) -> list[Any]:
    """Per role of the caller, SQL on `Entitlement`: it takes part in it; with
    `consent` (a data type and the day), recipients also need the school's consent
    for that data type on that day."""
    conditions: list[Any] = []
    for role in caller.roles:
        if role == Role.SELLER:
            conditions.append(
                Entitlement.delivery_id.in_(
                    select(Delivery.id).where(Delivery.seller_id == caller.supplier_id)
                )
            )
        elif role == Role.LICENSOR:
            # The licence office is the publisher's: it sees the entitlements on its
            # products (in the combined role it is no recipient, but still involved).
            conditions.append(
                Entitlement.product_id.in_(
                    select(Product.id).where(Product.publisher_id == caller.supplier_id)
                )
            )
        elif role in RECIPIENT_ROLE:
            recipient = _recipient_of(caller, role)
            if consent is None:
                conditions.append(recipient)
            else:
                data_type, today = consent
                school = Entitlement.school_id
                conditions.append(
                    and_(recipient, consented(school, caller, today, role, data_type))
                )
        elif role == Role.SCHOOL and caller.school_id is not None:
            conditions.append(Entitlement.school_id == caller.school_id)
    return conditions


def entitlement_scope(
    caller: Principal, today: date, data_type: DataType = DataType.ENTITLEMENTS
) -> Any:
    """SQL on `Entitlement`: the entitlements whose `data_type` data the caller may
    see today (ENTITLEMENTS for the entitlement itself, ACTIVATIONS for its licences)."""
    if Role.OPERATOR in caller.roles:
        return true()
    return or_(false(), *_entitlement_conditions(caller, (data_type, today)))


def entitlement_involvement(caller: Principal) -> Any:
    """SQL on `Entitlement`: the caller takes part in it, consent or not (the
    relation that earns a "consent required" instead of "not found")."""
    if Role.OPERATOR in caller.roles:
        return true()
    return or_(false(), *_entitlement_conditions(caller, None))


def licence_scope(caller: Principal, today: date) -> Any:
    """SQL on `Licence`: activations are visible to those who may see them for the
    entitlement they were activated on (ACTIVATIONS data type)."""
    if Role.OPERATOR in caller.roles:
        return true()
    return Licence.entitlement_id.in_(
        select(Entitlement.id).where(entitlement_scope(caller, today, DataType.ACTIVATIONS))
    )


def person_scope(person_id: Any, caller: Principal, today: date) -> Any:
    """SQL: the caller may read this person (its identifiers; `domain.consent`'s
    person rule): it may read school organisation data at some school where the
    person is enrolled."""
    if Role.OPERATOR in caller.roles:
        return true()
    conditions = []
    for role in caller.roles:
        if role == Role.SCHOOL and caller.school_id is not None:
            conditions.append(Enrolment.school_id == caller.school_id)
        elif (
            decide(
                role,
                DataType.SCHOOL_ORGANISATION,
                ConsentFacts(involved=True, activated=True, mandate_valid=True),
            )
            is Access.ALLOWED
        ):
            conditions.append(
                consented(
                    Enrolment.school_id, caller, today, role, DataType.SCHOOL_ORGANISATION
                )
            )
    return exists().where(Enrolment.person_id == person_id, or_(false(), *conditions))


def person_related(person_id: Any, caller: Principal) -> Any:
    """SQL: the caller is related to this person (`domain.consent`'s person rule):
    it takes part in an entitlement naming the person or one the person holds a
    licence on, or a school where the person is enrolled works with it (a data
    exchange, active or revoked, or a processing agreement). A school administrator
    is related to its own pupils only."""
    if Role.OPERATOR in caller.roles:
        return true()
    conditions = []
    if Role.SCHOOL in caller.roles and caller.school_id is not None:
        conditions.append(
            exists().where(
                Enrolment.person_id == person_id, Enrolment.school_id == caller.school_id
            )
        )
    # The same supplier in its other roles: as a supplier, not as the school.
    suppliers = replace(caller, roles=caller.roles - {Role.SCHOOL}, school_id=None)
    if suppliers.roles:
        works_with = or_(
            exists().where(
                DataExchange.school_id == Enrolment.school_id,
                DataExchange.supplier_id == caller.supplier_id,
            ),
            exists().where(
                ProcessingAgreement.school_id == Enrolment.school_id,
                ProcessingAgreement.supplier_id == caller.supplier_id,
            ),
        )
        conditions.append(exists().where(Enrolment.person_id == person_id, works_with))
        involved = entitlement_involvement(suppliers)
        conditions.append(
            exists(
                select(Licence.id)
                .join(Entitlement, Entitlement.id == Licence.entitlement_id)
                .where(Licence.person_id == person_id, involved)
            )
        )
        conditions.append(
            exists(
                select(Entitlee.id)
                .join(Entitlement, Entitlement.id == Entitlee.entitlement_id)
                .where(Entitlee.person_id == person_id, involved)
            )
        )
    return or_(false(), *conditions)


def visible_identifiers(caller: Principal, today: date) -> Any:
    """SQL on `PersonIdentifier` (of a person the caller may see): identifiers
    valid chain-wide, and school-scoped ones (ASI) only of schools whose school
    organisation data the caller may read: a school's own administration key is
    that school's data."""
    if Role.OPERATOR in caller.roles:
        return true()
    schools = visible_schools(caller, today, DataType.SCHOOL_ORGANISATION).subquery()
    return or_(
        PersonIdentifier.scope == "",
        PersonIdentifier.scope.in_(select(cast(schools.c.id, String))),
    )


def visible_schools(
    caller: Principal, today: date, data_type: DataType, school_ids: list[int] | None = None
) -> Any:
    """A select of the schools (of `school_ids`, or all) whose `data_type` the
    caller may read (school-level data: involvement is the school's own decision)."""
    from db.models import Organisation

    restrict = Organisation.id.in_(school_ids) if school_ids is not None else true()
    if Role.OPERATOR in caller.roles:
        return select(Organisation.id).where(restrict)
    conditions = []
    for role in caller.roles:
        if role == Role.SCHOOL:
            if caller.school_id is not None:
                conditions.append(Organisation.id == caller.school_id)
        elif (
            decide(role, data_type, ConsentFacts(involved=True, activated=True, mandate_valid=True))
            is Access.ALLOWED
        ):
            conditions.append(consented(Organisation.id, caller, today, role, data_type))
    return select(Organisation.id).where(restrict, or_(false(), *conditions))


async def school_access(
    session: AsyncSession, caller: Principal, today: date, school_id: int, data_type: DataType
) -> Access:
    """The decision for one school's `data_type`, over all the caller's roles."""
    if Role.OPERATOR in caller.roles:
        return Access.ALLOWED
    exchange_roles = set(
        await session.scalars(
            select(DataExchange.role).where(
                DataExchange.school_id == school_id,
                DataExchange.supplier_id == caller.supplier_id,
                DataExchange.data_type == data_type.value,
                DataExchange.revoked_at.is_(None),
            )
        )
    )
    mandate = bool(
        await session.scalar(select(mandated(school_id, caller.supplier_id, today)))
    )
    answers = []
    for role in caller.roles:
        involved = role != Role.SCHOOL or caller.school_id == school_id
        answers.append(
            decide(
                role,
                data_type,
                ConsentFacts(
                    involved=involved, activated=role.value in exchange_roles, mandate_valid=mandate
                ),
            )
        )
    return best(answers)


async def persons_access(
    session: AsyncSession, caller: Principal, today: date, person_ids: list[int]
) -> dict[int, Access]:
    """What the caller may learn about each person (`domain.consent.person_access`):
    ALLOWED, CONSENT_REQUIRED (related) or NOT_INVOLVED; at most two statements for
    any number of persons."""
    ids = sorted(set(person_ids))
    if Role.OPERATOR in caller.roles or not ids:
        return dict.fromkeys(ids, Access.ALLOWED)
    allowed = set(
        await session.scalars(
            select(Person.id).where(Person.id.in_(ids), person_scope(Person.id, caller, today))
        )
    )
    rest = [i for i in ids if i not in allowed]
    related = (
        set(
            await session.scalars(
                select(Person.id).where(Person.id.in_(rest), person_related(Person.id, caller))
            )
        )
        if rest
        else set()
    )
    return {
        i: person_access(allowed=i in allowed, related=i in related) for i in ids
    }


async def person_access_of(
    session: AsyncSession, caller: Principal, today: date, person_id: int
) -> Access:
    """`persons_access` for one person."""
    return (await persons_access(session, caller, today, [person_id]))[person_id]


async def entitlement_access(
    session: AsyncSession, caller: Principal, today: date, entitlement_id: int
) -> tuple[Access, Entitlement | None]:
    """One entitlement for the caller: ALLOWED with the row; CONSENT_REQUIRED when
    the caller is a recipient but the school's consent is missing (revoked,
    never activated, mandate expired); NOT_INVOLVED otherwise (nothing leaks)."""
    row = await session.scalar(
        select(Entitlement).where(
            Entitlement.id == entitlement_id, entitlement_scope(caller, today)
        )
    )
    if row is not None:
        return Access.ALLOWED, row
    recipient_roles = [RECIPIENT_ROLE[r].value for r in caller.roles
                       if r in (Role.PORTAL, Role.DASHBOARD)]
    if recipient_roles and await session.scalar(
        select(EntitlementRecipient.entitlement_id).where(
            EntitlementRecipient.entitlement_id == entitlement_id,
            EntitlementRecipient.supplier_id == caller.supplier_id,
            EntitlementRecipient.role.in_(recipient_roles),
        )
    ):
        return Access.CONSENT_REQUIRED, None
    return Access.NOT_INVOLVED, None


async def enrolled_schools(session: AsyncSession, person_id: int) -> list[int]:
    rows = await session.scalars(
        select(Enrolment.school_id).where(Enrolment.person_id == person_id).distinct()
    )
    return list(rows)
