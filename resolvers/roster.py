"""School organisation data (role ``sis``): decode the roster, resolve the school,
let ``domain.roster`` validate and match it, write it in one transaction through
``db.roster``, answer with the schema's payload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.types import Info

from db import roster as store
from domain.errors import DomainError, FieldError, StatusCode, ValidationFailed
from domain.identifiers import OrgLevel
from domain.roles import DataType, Role
from domain.roster import (
    GroupInput,
    IdentifierInput,
    PupilInput,
    RosterInput,
    SubjectInput,
    TeacherInput,
    match_persons,
    validate_roster,
)
from resolvers import lookup
from resolvers.auth import principal
from resolvers.queries import require_school
from resolvers.writes import ReferenceConflict, actor, run_write
from schema.payloads import conflict_payload, error_payload

if TYPE_CHECKING:
    from schema.roster import SchoolRosterInput


def decode(input: SchoolRosterInput) -> RosterInput:
    return RosterInput(
        period_code=input.period.code,
        period_start=input.period.start_date,
        period_end=input.period.end_date,
        subjects=tuple(SubjectInput(s.code, s.name) for s in input.subjects),
        groups=tuple(GroupInput(g.code, g.name, g.subject_code) for g in input.groups),
        pupils=tuple(
            PupilInput(
                eck_id=p.eck_id,
                identifiers=tuple(IdentifierInput(i.scheme.value, i.value) for i in p.identifiers),
                sector=p.sector,
                group_codes=tuple(p.group_codes),
                subject_codes=tuple(p.subject_codes),
            )
            for p in input.pupils
        ),
        teachers=tuple(
            TeacherInput(
                identifiers=tuple(IdentifierInput(i.scheme.value, i.value) for i in t.identifiers),
                group_codes=tuple(t.group_codes),
            )
            for t in input.teachers
        ),
        complete=input.complete,
    )


async def school_id(info: Info, school: Any, field: str = "school") -> int:
    """The provider a school identifier names; a ValidationFailed (code 9) otherwise."""
    found = await lookup.find_organisation(
        info.context.db, school.scheme, school.value, OrgLevel.PROVIDER
    )
    if isinstance(found, lookup.OrgFound):
        return found.row.id
    message = (
        found.error.message if isinstance(found, lookup.Malformed) else found.message  # type: ignore[union-attr]
    )
    raise ValidationFailed([FieldError(StatusCode.SCHOOL_UNKNOWN, field, message)])


async def upsert(info: Info, input: SchoolRosterInput) -> Any:
    from schema.roster import SchoolRosterUpserted

    context = info.context
    caller = await principal(context)
    spec = decode(input)
    try:
        school = await school_id(info, input.school)
    except DomainError as error:
        return error_payload(error)
    # The administration system processes the school's pupil data under its mandate.
    await require_school(info, [school], DataType.SCHOOL_ORGANISATION, input.school.value)

    async def work(session: Any) -> dict[str, Any]:
        facts = await store.school_facts(session, school, spec.period_code.strip())
        roster = validate_roster(
            spec,
            stored_group_codes=facts.groups.keys(),
            stored_subject_codes=facts.subjects.keys(),
        )
        stored = await store.stored_persons(session, school, roster.keys)
        matches = match_persons(roster, stored)
        counts = await store.upsert(
            session, school, roster, facts, matches, actor=actor(caller, Role.SIS.value)
        )
        return counts.as_dict()

    try:
        answer, replayed = await run_write(
            context,
            caller,
            "schoolRosterUpsert",
            input.reference_id,
            lambda: strawberry.asdict(input),
            work,
        )
    except ReferenceConflict as conflict:
        return conflict_payload(input.reference_id or "", str(conflict))
    except DomainError as error:
        return error_payload(error)
    return SchoolRosterUpserted.build(school, input.period, answer, replayed)
