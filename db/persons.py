"""Person reads: by ECK iD or secondary identifier, and a pupil's school
organisation (enrolments, groups, subjects), batched per list of persons."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Enrolment,
    GroupMembership,
    Person,
    PersonIdentifier,
    SchoolPeriod,
    SchoolSubject,
    SubjectEnrolment,
    TeachingGroup,
)
from domain.identifiers import PersonIdScheme


def by_identifier_statement(scheme: Any, value: Any, scope: Any) -> Any:
    """The (not erased) person with this identifier; the values may be SQL (the
    compiled reads embed this statement with parameters)."""
    return (
        select(Person)
        .join(PersonIdentifier, PersonIdentifier.person_id == Person.id)
        .where(
            PersonIdentifier.scheme == scheme,
            PersonIdentifier.scope == scope,
            PersonIdentifier.value == value,
            Person.erased_at.is_(None),
        )
    )


async def by_identifier(
    session: AsyncSession, scheme: PersonIdScheme, value: str, scope: str = ""
) -> Person | None:
    return await session.scalar(by_identifier_statement(scheme.value, value, scope))


async def by_ids(session: AsyncSession, ids: list[int]) -> dict[int, Person]:
    rows = await session.scalars(select(Person).where(Person.id.in_(ids)))
    return {row.id: row for row in rows}


async def identifiers_for(
    session: AsyncSession, ids: list[int], visible: Any = None
) -> dict[int, list[PersonIdentifier]]:
    """Identifiers of persons, limited by `visible` (SQL on PersonIdentifier,
    `db.access.visible_identifiers`) when given."""
    statement = select(PersonIdentifier).where(PersonIdentifier.person_id.in_(ids))
    if visible is not None:
        statement = statement.where(visible)
    rows = await session.scalars(
        statement.order_by(PersonIdentifier.scheme, PersonIdentifier.id)
    )
    found: dict[int, list[PersonIdentifier]] = defaultdict(list)
    for row in rows:
        found[row.person_id].append(row)
    return found


async def enrolments_for(
    session: AsyncSession, ids: list[int], schools: Any = None
) -> dict[int, list[tuple[Enrolment, SchoolPeriod]]]:
    """Enrolments, limited to the schools the caller may see (`schools`: a select
    of organisation ids, or None for all)."""
    statement = (
        select(Enrolment, SchoolPeriod)
        .join(SchoolPeriod, SchoolPeriod.id == Enrolment.period_id)
        .where(Enrolment.person_id.in_(ids))
    )
    if schools is not None:
        statement = statement.where(Enrolment.school_id.in_(schools))
    rows = await session.execute(statement.order_by(SchoolPeriod.start_date.desc(), Enrolment.id))
    found: dict[int, list[Any]] = defaultdict(list)
    for enrolment, period in rows:
        found[enrolment.person_id].append((enrolment, period))
    return found


async def groups_for(
    session: AsyncSession, ids: list[int], schools: Any = None
) -> dict[int, list[TeachingGroup]]:
    statement = (
        select(GroupMembership.person_id, TeachingGroup)
        .join(TeachingGroup, TeachingGroup.id == GroupMembership.group_id)
        .where(GroupMembership.person_id.in_(ids))
    )
    if schools is not None:
        statement = statement.where(TeachingGroup.school_id.in_(schools))
    rows = await session.execute(statement.order_by(TeachingGroup.code))
    found: dict[int, list[TeachingGroup]] = defaultdict(list)
    for person_id, group in rows:
        found[person_id].append(group)
    return found


async def subjects_for(
    session: AsyncSession, ids: list[int], schools: Any = None
) -> dict[int, list[SchoolSubject]]:
    statement = (
        select(SubjectEnrolment.person_id, SchoolSubject)
        .join(SchoolSubject, SchoolSubject.id == SubjectEnrolment.subject_id)
        .where(SubjectEnrolment.person_id.in_(ids))
    )
    if schools is not None:
        statement = statement.where(SchoolSubject.school_id.in_(schools))
    rows = await session.execute(statement.order_by(SchoolSubject.code))
    found: dict[int, list[SchoolSubject]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for person_id, subject in rows:
        if (person_id, subject.id) not in seen:
            seen.add((person_id, subject.id))
            found[person_id].append(subject)
    return found
