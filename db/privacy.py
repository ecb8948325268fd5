"""Privacy: the school's audit trail, read auditing, and erasure of a pupil.

Erasure removes everything that identifies the person (identifiers, enrolments,
memberships, named entitlements) and keeps what the chain needs to count:
licences stay, anonymised (no person), and the person row stays as an empty,
erased record so that counts per school and product do not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, delete, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    AuditLog,
    Enrolment,
    Entitlee,
    GroupMembership,
    Licence,
    Person,
    PersonIdentifier,
    SubjectEnrolment,
)
from db.outbox import audit
from domain.roles import Actor


def trail_statement(
    school_id: int, since: datetime | None, until: datetime | None
) -> Select[Any]:
    statement = select(AuditLog).where(AuditLog.school_id == school_id)
    if since is not None:
        statement = statement.where(AuditLog.at >= since)
    if until is not None:
        statement = statement.where(AuditLog.at < until)
    return statement


#: An audit read: (school id, action, object type, object id).
Read = tuple[int | None, str, str, str | None]

#: The columns a read fills, in the order of `read_records`.
READ_COLUMNS = ("supplier_id", "role", "action", "object_type", "object_id", "school_id")


def read_records(actor: Actor, reads: Iterable[Read]) -> list[tuple[Any, ...]]:
    """One audit row per (school, action, object) read, as READ_COLUMNS."""
    return [
        (actor.supplier_id, actor.role, action, object_type, object_id, school_id)
        for school_id, action, object_type, object_id in reads
    ]


async def record_reads(session: AsyncSession, actor: Actor, reads: Iterable[Read]) -> None:
    """One audit row per (school, action, object) read in a request."""
    rows = [dict(zip(READ_COLUMNS, record, strict=True)) for record in read_records(actor, reads)]
    if rows:
        # Core's executemany: one statement for every row (the ORM's bulk insert
        # sent one statement per row whenever a row's NULLs differed from the last).
        await session.execute(cast(Table, AuditLog.__table__).insert(), rows)


async def copy_reads(session: AsyncSession, batches: Iterable[tuple[Actor, list[Read]]]) -> None:
    """Many requests' reads in one write, inside the caller's transaction:
    PostgreSQL's COPY through asyncpg (binary records, far less CPU than an INSERT's
    parameters for the thousands of rows a busy buffer flushes; bench/RESULTS.md);
    elsewhere `record_reads` once per actor."""
    if session.get_bind().dialect.name != "postgresql":
        by_actor: dict[Actor, list[Read]] = {}
        for actor, reads in batches:
            by_actor.setdefault(actor, []).extend(reads)
        for actor, reads in by_actor.items():
            await record_reads(session, actor, reads)
        return
    records = [record for actor, reads in batches for record in read_records(actor, reads)]
    if records:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.copy_records_to_table(
            AuditLog.__tablename__, records=records, columns=READ_COLUMNS
        )


async def _affected(session: AsyncSession, statement: Any) -> int:
    """Run a DELETE or UPDATE; the number of rows it changed."""
    # A DML statement's result is a CursorResult (execute() is typed as any Result).
    result = cast("CursorResult[Any]", await session.execute(statement))
    return result.rowcount


async def erase_person(
    session: AsyncSession, person_id: int, actor: Actor, reason: str
) -> dict[str, Any]:
    schools: list[int | None] = list(
        await session.scalars(
            select(Enrolment.school_id).where(Enrolment.person_id == person_id).distinct()
        )
    )
    counts = {
        "identifiers": await _affected(
            session, delete(PersonIdentifier).where(PersonIdentifier.person_id == person_id)
        ),
        "enrolments": await _affected(
            session, delete(Enrolment).where(Enrolment.person_id == person_id)
        ),
        "groupMemberships": await _affected(
            session, delete(GroupMembership).where(GroupMembership.person_id == person_id)
        ),
        "subjectEnrolments": await _affected(
            session, delete(SubjectEnrolment).where(SubjectEnrolment.person_id == person_id)
        ),
        "namedEntitlements": await _affected(
            session, delete(Entitlee).where(Entitlee.person_id == person_id)
        ),
        "licencesAnonymised": await _affected(
            session, update(Licence).where(Licence.person_id == person_id).values(person_id=None)
        ),
    }
    await session.execute(update(Person).where(Person.id == person_id).values(erased_at=func.now()))
    for school_id in schools or [None]:
        await audit(
            session,
            actor,
            "person.erase",
            "person",
            person_id,
            school_id=school_id,
            detail={"reason": reason, **counts},
        )
    return counts
