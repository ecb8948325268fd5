"""Storing a school's roster (school organisation data) in bulk. One module (about
450 lines): every statement of the upsert writes part of the one plan `domain.roster`
made, and they share its bulk lookups.

The rules live in ``domain.roster``; this module loads the facts it needs (the
school's stored period, subjects and groups, and which persons the roster's
identifiers already name) and writes the plan. Every step is one statement for
the whole roster (executemany, or a lookup per identifier scheme in chunks), never
one per pupil: a roster of 2,000 pupils costs a few dozen statements, and a roster
sent twice costs only the reads, because nothing differs.

Runs inside the caller's transaction. A concurrent upsert of the same person (two
schools sending the same new pupil at the same moment) hits a unique constraint;
the caller retries the whole roster, which then finds the person.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
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
from db.outbox import audit
from domain.identifiers import Sector
from domain.persons import PersonKind
from domain.roles import Actor
from domain.roster import Change, Match, PersonKey, Roster, StoredPerson, plan

LOOKUP_CHUNK = 5000


@dataclass(frozen=True)
class StoredGroup:
    id: int
    name: str
    subject_id: int | None


@dataclass(frozen=True)
class SchoolFacts:
    """What the school already has for the roster's period."""

    period: SchoolPeriod | None
    subjects: dict[str, tuple[int, str]]
    groups: dict[str, StoredGroup]


@dataclass(frozen=True)
class RosterCounts:
    """What an upsert changed; all zero when the same roster is sent again."""

    period_changed: bool
    subjects_upserted: int
    groups_upserted: int
    persons_created: int
    persons_matched: int
    identifiers_added: int
    enrolments_added: int
    enrolments_removed: int
    memberships_added: int
    memberships_removed: int
    subject_enrolments_added: int
    subject_enrolments_removed: int

    @property
    def changed(self) -> bool:
        return any(
            (
                self.period_changed,
                self.subjects_upserted,
                self.groups_upserted,
                self.persons_created,
                self.identifiers_added,
                self.enrolments_added,
                self.enrolments_removed,
                self.memberships_added,
                self.memberships_removed,
                self.subject_enrolments_added,
                self.subject_enrolments_removed,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "periodChanged": self.period_changed,
            "subjectsUpserted": self.subjects_upserted,
            "groupsUpserted": self.groups_upserted,
            "personsCreated": self.persons_created,
            "personsMatched": self.persons_matched,
            "identifiersAdded": self.identifiers_added,
            "enrolmentsAdded": self.enrolments_added,
            "enrolmentsRemoved": self.enrolments_removed,
            "membershipsAdded": self.memberships_added,
            "membershipsRemoved": self.memberships_removed,
            "subjectEnrolmentsAdded": self.subject_enrolments_added,
            "subjectEnrolmentsRemoved": self.subject_enrolments_removed,
        }


async def school_facts(session: AsyncSession, school_id: int, period_code: str) -> SchoolFacts:
    period = await session.scalar(
        select(SchoolPeriod).where(
            SchoolPeriod.school_id == school_id, SchoolPeriod.code == period_code
        )
    )
    subjects = {
        code: (id_, name)
        for id_, code, name in await session.execute(
            select(SchoolSubject.id, SchoolSubject.code, SchoolSubject.name).where(
                SchoolSubject.school_id == school_id
            )
        )
    }
    groups: dict[str, StoredGroup] = {}
    if period is not None:
        groups = {
            code: StoredGroup(id_, name, subject_id)
            for id_, code, name, subject_id in await session.execute(
                select(
                    TeachingGroup.id,
                    TeachingGroup.code,
                    TeachingGroup.name,
                    TeachingGroup.subject_id,
                ).where(TeachingGroup.period_id == period.id)
            )
        }
    return SchoolFacts(period, subjects, groups)


def _scope(key: PersonKey, school_id: int) -> str:
    return str(school_id) if key.school_scoped else ""


async def stored_persons(
    session: AsyncSession, school_id: int, keys: Iterable[PersonKey]
) -> dict[PersonKey, StoredPerson]:
    """The persons the given identifiers already name: one statement per scheme and
    chunk of values, each using the (scheme, scope, value) unique index."""
    by_scheme: dict[tuple[str, str], list[str]] = defaultdict(list)
    wanted: dict[tuple[str, str, str], PersonKey] = {}
    for key in keys:
        scope = _scope(key, school_id)
        by_scheme[(key.scheme.value, scope)].append(key.value)
        wanted[(key.scheme.value, scope, key.value)] = key
    found: dict[PersonKey, StoredPerson] = {}
    for (scheme, scope), values in by_scheme.items():
        for start in range(0, len(values), LOOKUP_CHUNK):
            rows = await session.execute(
                select(PersonIdentifier.value, Person.id, Person.kind, Person.sector)
                .join(Person, Person.id == PersonIdentifier.person_id)
                .where(
                    PersonIdentifier.scheme == scheme,
                    PersonIdentifier.scope == scope,
                    PersonIdentifier.value.in_(values[start : start + LOOKUP_CHUNK]),
                    Person.erased_at.is_(None),
                )
            )
            for value, person_id, kind, sector in rows:
                found[wanted[(scheme, scope, value)]] = StoredPerson(
                    person_id, PersonKind(kind), Sector(sector) if sector else None
                )
    return found


async def _upsert_period(
    session: AsyncSession, school_id: int, roster: Roster, stored: SchoolPeriod | None
) -> tuple[int, bool]:
    if stored is None:
        period_id = await session.scalar(
            insert(SchoolPeriod)
            .values(
                school_id=school_id,
                code=roster.period_code,
                start_date=roster.period_start,
                end_date=roster.period_end,
            )
            .returning(SchoolPeriod.id)
        )
        assert period_id is not None
        return period_id, True
    if (stored.start_date, stored.end_date) != (roster.period_start, roster.period_end):
        await session.execute(
            update(SchoolPeriod)
            .where(SchoolPeriod.id == stored.id)
            .values(start_date=roster.period_start, end_date=roster.period_end)
        )
        return stored.id, True
    return stored.id, False


async def _upsert_subjects(
    session: AsyncSession, school_id: int, roster: Roster, facts: SchoolFacts
) -> tuple[dict[str, int], int]:
    new = [s for s in roster.subjects if s.code not in facts.subjects]
    renamed = [
        s
        for s in roster.subjects
        if s.code in facts.subjects and facts.subjects[s.code][1] != s.name
    ]
    ids = {code: id_ for code, (id_, _name) in facts.subjects.items()}
    if new:
        rows = await session.execute(
            insert(SchoolSubject).returning(SchoolSubject.id, SchoolSubject.code),
            [{"school_id": school_id, "code": s.code, "name": s.name} for s in new],
        )
        ids.update({code: id_ for id_, code in rows})
    if renamed:
        conn = await session.connection()
        table = cast(Table, SchoolSubject.__table__)
        await conn.execute(
            update(table).where(table.c.id == bindparam("_id")).values(name=bindparam("_name")),
            [{"_id": ids[s.code], "_name": s.name} for s in renamed],
        )
    return ids, len(new) + len(renamed)


async def _upsert_groups(
    session: AsyncSession,
    school_id: int,
    period_id: int,
    roster: Roster,
    facts: SchoolFacts,
    subject_ids: dict[str, int],
) -> tuple[dict[str, int], int]:
    stored = facts.groups if facts.period is not None and facts.period.id == period_id else {}
    ids = {code: group.id for code, group in stored.items()}
    new, changed = [], []
    for group in roster.groups:
        subject_id = subject_ids[group.subject_code] if group.subject_code else None
        old = stored.get(group.code)
        if old is None:
            new.append(
                {
                    "school_id": school_id,
                    "period_id": period_id,
                    "code": group.code,
                    "name": group.name,
                    "subject_id": subject_id,
                }
            )
        elif (old.name, old.subject_id) != (group.name, subject_id):
            changed.append({"_id": old.id, "_name": group.name, "_subject_id": subject_id})
    if new:
        rows = await session.execute(
            insert(TeachingGroup).returning(TeachingGroup.id, TeachingGroup.code),
            new,
        )
        ids.update({code: id_ for id_, code in rows})
    if changed:
        conn = await session.connection()
        table = cast(Table, TeachingGroup.__table__)
        await conn.execute(
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(name=bindparam("_name"), subject_id=bindparam("_subject_id")),
            changed,
        )
    return ids, len(new) + len(changed)


async def _create_persons(session: AsyncSession, matches: Sequence[Match]) -> list[int]:
    """Insert the new persons; their ids in the order of ``matches``' new entries.

    New person rows differ only in (kind, sector), so each such group is inserted
    in one batched statement and its ids may come back in any order: any id of the
    group fits any entry of it. (Asking for the parameter order instead makes
    SQLAlchemy fall back to one statement per row on SQLite.)"""
    new = [index for index, m in enumerate(matches) if m.person_id is None]
    by_shape: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for index in new:
        entry = matches[index].entry
        by_shape[(entry.kind.value, entry.sector.value if entry.sector else None)].append(index)
    ids: dict[int, int] = {}
    for (kind, sector), indexes in by_shape.items():
        created = await session.scalars(
            insert(Person).returning(Person.id),
            [{"kind": kind, "sector": sector} for _ in indexes],
        )
        ids.update(zip(indexes, created, strict=True))
    return [ids[index] for index in new]


async def _pairs(session: AsyncSession, statement: Any) -> set[tuple[int, int]]:
    return {(a, b) for a, b in await session.execute(statement)}


async def _apply(
    session: AsyncSession, table: Any, change: Change, columns: tuple[str, str], **fixed: Any
) -> None:
    """Insert ``change.add`` and delete ``change.remove``: one executemany each."""
    first, second = columns
    conn = await session.connection()
    if change.add:
        await conn.execute(
            insert(table),
            [{first: a, second: b, **fixed} for a, b in sorted(change.add)],
        )
    if change.remove:
        condition = [table.c[first] == bindparam("_a"), table.c[second] == bindparam("_b")]
        condition += [table.c[name] == value for name, value in fixed.items()]
        await conn.execute(
            delete(table).where(*condition),
            [{"_a": a, "_b": b} for a, b in sorted(change.remove)],
        )


async def upsert(
    session: AsyncSession,
    school_id: int,
    roster: Roster,
    facts: SchoolFacts,
    matches: Sequence[Match],
    *,
    actor: Actor,
) -> RosterCounts:
    """Write the roster: period, subjects, groups, new persons and identifiers, then
    enrolments, group memberships and subject enrolments as differences."""
    period_id, period_changed = await _upsert_period(session, school_id, roster, facts.period)
    subject_ids, subjects_upserted = await _upsert_subjects(session, school_id, roster, facts)
    group_ids, groups_upserted = await _upsert_groups(
        session, school_id, period_id, roster, facts, subject_ids
    )

    created = iter(await _create_persons(session, matches))
    person_ids: list[int] = []
    identifier_rows: list[dict[str, Any]] = []
    sector_rows: list[dict[str, Any]] = []
    for match in matches:
        person_id = match.person_id if match.person_id is not None else next(created)
        person_ids.append(person_id)
        identifier_rows += [
            {
                "person_id": person_id,
                "scheme": key.scheme.value,
                "scope": _scope(key, school_id),
                "value": key.value,
            }
            for key in match.missing_keys
        ]
        if match.set_sector is not None:
            sector_rows.append({"_id": person_id, "_sector": match.set_sector.value})
    if identifier_rows:
        await session.execute(insert(PersonIdentifier), identifier_rows)
    if sector_rows:
        conn = await session.connection()
        table = cast(Table, Person.__table__)
        await conn.execute(
            update(table).where(table.c.id == bindparam("_id")).values(sector=bindparam("_sector")),
            sector_rows,
        )

    listed = set(person_ids)
    enrolments = plan(
        {(p, period_id) for p in person_ids},
        await _pairs(
            session,
            select(Enrolment.person_id, Enrolment.period_id).where(
                Enrolment.school_id == school_id, Enrolment.period_id == period_id
            ),
        ),
        listed=listed,
        complete=roster.complete,
    )
    memberships = plan(
        {
            (person_id, group_ids[code])
            for person_id, match in zip(person_ids, matches, strict=True)
            for code in match.entry.group_codes
        },
        await _pairs(
            session,
            select(GroupMembership.person_id, GroupMembership.group_id)
            .join(TeachingGroup, TeachingGroup.id == GroupMembership.group_id)
            .where(TeachingGroup.period_id == period_id),
        ),
        listed=listed,
        complete=roster.complete,
    )
    subject_enrolments = plan(
        {
            (person_id, subject_ids[code])
            for person_id, match in zip(person_ids, matches, strict=True)
            for code in match.entry.subject_codes
        },
        await _pairs(
            session,
            select(SubjectEnrolment.person_id, SubjectEnrolment.subject_id).where(
                SubjectEnrolment.period_id == period_id
            ),
        ),
        listed=listed,
        complete=roster.complete,
    )
    await _apply(
        session,
        Enrolment.__table__,
        enrolments,
        ("person_id", "period_id"),
        school_id=school_id,
    )
    await _apply(session, GroupMembership.__table__, memberships, ("person_id", "group_id"))
    await _apply(
        session,
        SubjectEnrolment.__table__,
        subject_enrolments,
        ("person_id", "subject_id"),
        period_id=period_id,
    )

    counts = RosterCounts(
        period_changed=period_changed,
        subjects_upserted=subjects_upserted,
        groups_upserted=groups_upserted,
        persons_created=sum(1 for m in matches if m.person_id is None),
        persons_matched=sum(1 for m in matches if m.person_id is not None),
        identifiers_added=len(identifier_rows),
        enrolments_added=len(enrolments.add),
        enrolments_removed=len(enrolments.remove),
        memberships_added=len(memberships.add),
        memberships_removed=len(memberships.remove),
        subject_enrolments_added=len(subject_enrolments.add),
        subject_enrolments_removed=len(subject_enrolments.remove),
    )
    if counts.changed:
        await audit(
            session,
            actor,
            "roster.upsert",
            "school_period",
            period_id,
            school_id=school_id,
            detail={
                "periodCode": roster.period_code,
                "complete": roster.complete,
                **counts.as_dict(),
            },
        )
    return counts
