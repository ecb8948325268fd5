"""School organisation data (schoolorganisatie): the administration system's bulk
upsert of a school's period, subjects, groups, pupils, teachers and memberships."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from domain.identifiers import PersonIdScheme, Sector
from schema.lookups import OrganisationIdentifierInput
from schema.payloads import ReferenceConflictError, ValidationError
from schema.types import Organisation, SchoolPeriod, load_organisation


@strawberry.input(
    description="A person identifier other than the ECK iD: NEPRI, NEPPI, BPI, ASI (the "
    "administration system's key, unique within the school) or EDUID."
)
class PersonIdInput:
    scheme: PersonIdScheme = strawberry.field(description="Identifier scheme.")
    value: str = strawberry.field(description="The identifier, as its issuer wrote it.")


@strawberry.input(description="The school period (schooljaar or periode) the roster is for.")
class SchoolPeriodInput:
    code: str = strawberry.field(description="The school's code for the period, e.g. 2025-2026.")
    start_date: date = strawberry.field(description="First day of the period.")
    end_date: date = strawberry.field(description="Last day of the period (inclusive).")


@strawberry.input(description="A subject (vak) the school teaches.")
class RosterSubjectInput:
    code: str = strawberry.field(
        description="The school's subject code; SCHOOL_SUBJECT entitlements name it."
    )
    name: str = strawberry.field(description="Name of the subject.")


@strawberry.input(description="A group (lesgroep or klas) in the roster's period.")
class RosterGroupInput:
    code: str = strawberry.field(
        description="The school's group code; SCHOOL_GROUP entitlements name it."
    )
    name: str = strawberry.field(description="Name of the group.")
    subject_code: str | None = strawberry.field(
        default=None, description="The subject taught in this group, for a lesgroep."
    )


@strawberry.input(
    description="A pupil (onderwijsdeelnemer): ECK iD and/or secondary identifiers, and "
    "every group and subject the pupil has at this school in this period (a group left "
    "out is a group the pupil left)."
)
class RosterPupilInput:
    eck_id: str | None = strawberry.field(
        default=None, description="The pupil's ECK iD; leave out where none exists."
    )
    identifiers: list[PersonIdInput] = strawberry.field(
        default_factory=list, description="Secondary identifiers (never a BSN or onderwijsnummer)."
    )
    sector: Sector | None = strawberry.field(
        default=None, description="The sector the ECK iD is bound to (po, vo, mbo, ho)."
    )
    group_codes: list[str] = strawberry.field(
        default_factory=list, description="Codes of the groups the pupil is in."
    )
    subject_codes: list[str] = strawberry.field(
        default_factory=list, description="Codes of the subjects the pupil follows."
    )


@strawberry.input(
    description="A teacher (onderwijsmedewerker): secondary identifiers only, and the "
    "groups the teacher teaches."
)
class RosterTeacherInput:
    identifiers: list[PersonIdInput] = strawberry.field(
        description="Secondary identifiers; there is no primary identifier for teachers."
    )
    group_codes: list[str] = strawberry.field(
        default_factory=list, description="Codes of the groups the teacher teaches."
    )


@strawberry.input(
    description="One school's organisation data for one period. Sending the same roster "
    "again changes nothing."
)
class SchoolRosterInput:
    school: OrganisationIdentifierInput = strawberry.field(
        description="The school (provider), by any of its RIO identifiers."
    )
    period: SchoolPeriodInput = strawberry.field(description="The school period.")
    subjects: list[RosterSubjectInput] = strawberry.field(
        default_factory=list, description="Subjects to add or rename (by code)."
    )
    groups: list[RosterGroupInput] = strawberry.field(
        default_factory=list, description="Groups of the period to add or change (by code)."
    )
    pupils: list[RosterPupilInput] = strawberry.field(
        default_factory=list, description="Pupils with their groups and subjects."
    )
    teachers: list[RosterTeacherInput] = strawberry.field(
        default_factory=list, description="Teachers with their groups."
    )
    complete: bool = strawberry.field(
        default=False,
        description="This is the whole roster of the school for the period: persons not in "
        "it lose their enrolment, groups and subjects here (their record and licences stay).",
    )
    reference_id: str | None = strawberry.field(
        default=None,
        description="The sender's message id: a repeat with the same id gets the same answer.",
    )


@strawberry.type(description="The roster was stored; the counts say what changed.")
class SchoolRosterUpserted:
    period: SchoolPeriod = strawberry.field(description="The school period.")
    changed: bool = strawberry.field(
        description="Whether anything changed (false when the same roster was sent again)."
    )
    replayed: bool = strawberry.field(
        description="True when this referenceId was processed before and this is that answer."
    )
    persons_created: int = strawberry.field(description="Pupils and teachers new to the gateway.")
    persons_matched: int = strawberry.field(
        description="Pupils and teachers already known (e.g. a pupil who changed school)."
    )
    identifiers_added: int = strawberry.field(description="Identifiers added to persons.")
    subjects_upserted: int = strawberry.field(description="Subjects added or renamed.")
    groups_upserted: int = strawberry.field(description="Groups added or changed.")
    enrolments_added: int = strawberry.field(description="Enrolments added.")
    enrolments_removed: int = strawberry.field(
        description="Enrolments removed (complete rosters only)."
    )
    memberships_added: int = strawberry.field(description="Group memberships added.")
    memberships_removed: int = strawberry.field(
        description="Group memberships removed (a pupil who left a group)."
    )
    subject_enrolments_added: int = strawberry.field(description="Subject enrolments added.")
    subject_enrolments_removed: int = strawberry.field(description="Subject enrolments removed.")
    school_pk: strawberry.Private[int]

    @strawberry.field(description="The school (provider).")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)

    @classmethod
    def build(
        cls, school_pk: int, period: SchoolPeriodInput, answer: dict[str, Any], replayed: bool
    ) -> SchoolRosterUpserted:
        return cls(
            period=SchoolPeriod(
                code=period.code.strip(), start_date=period.start_date, end_date=period.end_date
            ),
            changed=any(v for k, v in answer.items() if k != "personsMatched"),
            replayed=replayed,
            persons_created=answer["personsCreated"],
            persons_matched=answer["personsMatched"],
            identifiers_added=answer["identifiersAdded"],
            subjects_upserted=answer["subjectsUpserted"],
            groups_upserted=answer["groupsUpserted"],
            enrolments_added=answer["enrolmentsAdded"],
            enrolments_removed=answer["enrolmentsRemoved"],
            memberships_added=answer["membershipsAdded"],
            memberships_removed=answer["membershipsRemoved"],
            subject_enrolments_added=answer["subjectEnrolmentsAdded"],
            subject_enrolments_removed=answer["subjectEnrolmentsRemoved"],
            school_pk=school_pk,
        )


SchoolRosterUpsertPayload = Annotated[
    SchoolRosterUpserted | ValidationError | ReferenceConflictError,
    strawberry.union(
        "SchoolRosterUpsertPayload",
        description="The stored roster, or why it was refused (nothing was written).",
    ),
]
