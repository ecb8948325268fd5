"""School organisation data (role ``sis``): decode the roster, resolve the school,
check the caller may write its organisation data, call the use case
(`services/roster.py`), answer with the schema's payload."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from domain.errors import FieldError, StatusCode, ValidationFailed
from domain.identifiers import OrgLevel
from domain.roles import DataType
from domain.roster import (
    GroupInput,
    IdentifierInput,
    PupilInput,
    RosterInput,
    SubjectInput,
    TeacherInput,
)
from resolvers import lookup
from resolvers.auth import principal, require_school
from resolvers.writes import REFUSED, refusal
from schema.roster import SchoolRosterInput, SchoolRosterUpserted, SchoolRosterUpsertPayload
from services import roster as service


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


async def upsert(info: Info, input: SchoolRosterInput) -> SchoolRosterUpsertPayload:

    context = info.context
    caller = await principal(context)
    spec = decode(input)
    try:
        school = await school_id(info, input.school)
    except REFUSED as error:
        return refusal(error, input.reference_id, SchoolRosterUpsertPayload)
    # The administration system processes the school's pupil data under its mandate.
    await require_school(info, [school], DataType.SCHOOL_ORGANISATION, input.school.value)

    try:
        answer, replayed = await service.upsert(
            context.db,
            caller,
            school,
            spec,
            input.reference_id,
            lambda: strawberry.asdict(input),
            context.fresh_loaders,
        )
    except REFUSED as error:
        return refusal(error, input.reference_id, SchoolRosterUpsertPayload)
    return SchoolRosterUpserted.build(school, input.period, answer, replayed)
