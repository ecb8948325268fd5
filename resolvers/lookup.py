"""Resolve the identifiers callers send (any RIO id, any person id) to rows.

Used by the lookup queries and by every mutation that names a school, product or
person, so that "unknown", "ambiguous" and "malformed" mean the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from db import organisations, persons
from db.models import Organisation, Person
from domain.identifiers import (
    IdentifierError,
    OrgIdScheme,
    OrgLevel,
    PersonIdScheme,
    is_school_scoped,
    validate_org_identifier,
    validate_person_identifier,
)
from resolvers.context import Database


@dataclass(frozen=True)
class OrgFound:
    row: Organisation


@dataclass(frozen=True)
class OrgNotFound:
    scheme: OrgIdScheme | None
    value: str
    message: str


@dataclass(frozen=True)
class OrgAmbiguous:
    value: str
    candidates: list[Organisation]
    message: str


@dataclass(frozen=True)
class Malformed:
    error: IdentifierError


OrgResult = OrgFound | OrgNotFound | OrgAmbiguous | Malformed


def _normalise_any(value: str) -> str:
    return value.strip()


async def find_organisation(
    db: Database, scheme: OrgIdScheme | None, value: str, level: OrgLevel | None = None
) -> OrgResult:
    try:
        clean = (
            validate_org_identifier(scheme, value) if scheme is not None else _normalise_any(value)
        )
    except IdentifierError as error:
        return Malformed(error)
    if not clean:
        return OrgNotFound(scheme, value, "the identifier is empty")
    rows = await db.run(lambda s: organisations.find(s, scheme, clean, level))
    if not rows and scheme is None and clean.upper() != clean:
        # Without a scheme we cannot know whether letters are significant (DD_ID is
        # case-sensitive, RIO codes are upper case): try the upper-case form too.
        rows = await db.run(lambda s: organisations.find(s, None, clean.upper(), level))
    where = f"{scheme.value} " if scheme else ""
    if not rows:
        level_text = f" at level {level.value}" if level else ""
        return OrgNotFound(scheme, clean, f"no organisation{level_text} has {where}{clean!r}")
    if len(rows) > 1:
        return OrgAmbiguous(
            clean,
            rows,
            f"{where}{clean!r} points at {len(rows)} organisations "
            f"({', '.join(r.level + ' ' + r.rio_id for r in rows)}); "
            "use a primary id (OA_ID, OL_CODE, OB_ID) or name the scheme",
        )
    return OrgFound(rows[0])


@dataclass(frozen=True)
class PersonFound:
    row: Person
    scheme: PersonIdScheme
    value: str


@dataclass(frozen=True)
class PersonMissing:
    scheme: PersonIdScheme
    value: str
    message: str


PersonResult = PersonFound | PersonMissing | Malformed | OrgNotFound | OrgAmbiguous


async def find_person(
    db: Database,
    scheme: PersonIdScheme,
    value: str,
    school: tuple[OrgIdScheme | None, str] | None = None,
) -> PersonResult:
    try:
        clean = validate_person_identifier(scheme, value)
    except IdentifierError as error:
        return Malformed(error)
    scope = ""
    if is_school_scoped(scheme):
        if school is None:
            return PersonMissing(
                scheme, clean, f"{scheme.value} is only unique within a school: name the school"
            )
        found = await find_organisation(db, school[0], school[1], OrgLevel.PROVIDER)
        if not isinstance(found, OrgFound):
            return found  # type: ignore[return-value]
        scope = str(found.row.id)
    row = await db.run(lambda s: persons.by_identifier(s, scheme, clean, scope))
    if row is None:
        return person_missing(scheme, clean)
    return PersonFound(row, scheme, clean)


def person_missing(scheme: PersonIdScheme, value: str) -> PersonMissing:
    """The answer for an unknown person, and (`domain.consent.disclose`) for a
    person the caller has no relation to: the same in every field."""
    return PersonMissing(scheme, value, f"no person found for {scheme.value} {value!r}")
