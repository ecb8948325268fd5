"""School organisation data (schoolorganisatie): one school's roster for one period.

A school's administration system (LAS/SIS, role ``sis``) sends the school's periods,
subjects, groups, pupils, teachers and who is in which group or follows which
subject (DOMAIN.md §2, §7). The licence office needs this for SCHOOL_GROUP and
SCHOOL_SUBJECT entitlements: a pupil may activate through a group or subject only
while they are in it (DOMAIN.md §6 b, "at activation time").

This module is the pure part of a roster upsert: it validates the input, matches
each roster entry to the persons the database already knows (facts passed in), and
plans which memberships to add and remove. It never reads the database.

Rules:

* A **pupil** is identified by ECK iD and/or secondary identifiers (NEPRI, NEPPI,
  BPI, ASI, eduID); a pupil without an ECK iD (private education, Caribbean
  Netherlands) by a secondary id alone. A **teacher** only by secondary ids: there
  is no primary identifier for teachers (seed 002), so an ECK iD is refused there.
  Every identifier is validated and normalised by ``domain.identifiers`` (which
  refuses anything that looks like a BSN or onderwijsnummer).
* One person, one record: an entry whose identifiers already belong to a person is
  that person (a pupil who changes school within a sector keeps their ECK iD, so
  their record and licences). Identifiers that belong to two different persons, to a
  person of the other kind, or an ECK iD of another sector are refused, never merged.
* **An entry is the whole truth about that person for this school and period**: the
  groups and subjects listed are all the person's groups and subjects here, so a
  pupil who left a group is simply sent without it.
* ``complete``: the roster is the whole truth about the school and period, so
  persons missing from it lose their enrolment, groups and subjects there. Their
  person record, identifiers and licences stay (licences hang on the person).
* Periods, subjects and groups are upserted by their code and never deleted here:
  entitlements refer to groups and subjects.
* Sending the same roster twice changes nothing: the plan is a difference between
  what is stored and what is sent.

Every problem is reported at once, each with a field path such as
``pupils.12.eckId`` or ``groups.3.subjectCode``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import date

from domain.errors import FieldError, StatusCode, ValidationFailed
from domain.identifiers import (
    IdentifierError,
    PeriodError,
    PersonIdScheme,
    Sector,
    is_school_scoped,
    validate_period,
    validate_person_identifier,
)
from domain.persons import PersonKind

MAX_CODE_LENGTH = 64
MAX_NAME_LENGTH = 200

# --- the roster as sent -----------------------------------------------------------------


@dataclass(frozen=True)
class IdentifierInput:
    scheme: str
    value: str


@dataclass(frozen=True)
class SubjectInput:
    code: str
    name: str


@dataclass(frozen=True)
class GroupInput:
    code: str
    name: str
    subject_code: str | None = None


@dataclass(frozen=True)
class PupilInput:
    eck_id: str | None = None
    identifiers: tuple[IdentifierInput, ...] = ()
    sector: Sector | None = None
    group_codes: tuple[str, ...] = ()
    subject_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TeacherInput:
    identifiers: tuple[IdentifierInput, ...] = ()
    group_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RosterInput:
    period_code: str
    period_start: date
    period_end: date
    subjects: tuple[SubjectInput, ...] = ()
    groups: tuple[GroupInput, ...] = ()
    pupils: tuple[PupilInput, ...] = ()
    teachers: tuple[TeacherInput, ...] = ()
    complete: bool = False


# --- the roster after validation --------------------------------------------------------


@dataclass(frozen=True)
class PersonKey:
    """A normalised identifier; ``school_scoped`` ones are unique only within the school."""

    scheme: PersonIdScheme
    value: str

    @property
    def school_scoped(self) -> bool:
        return is_school_scoped(self.scheme)


@dataclass(frozen=True)
class PersonEntry:
    """One pupil or teacher of the roster, normalised. ``path`` is ``pupils.3``."""

    path: str
    kind: PersonKind
    keys: tuple[PersonKey, ...]
    sector: Sector | None
    group_codes: frozenset[str]
    subject_codes: frozenset[str]


@dataclass(frozen=True)
class Roster:
    period_code: str
    period_start: date
    period_end: date
    subjects: tuple[SubjectInput, ...]
    groups: tuple[GroupInput, ...]
    persons: tuple[PersonEntry, ...]
    complete: bool

    @property
    def keys(self) -> frozenset[PersonKey]:
        return frozenset(key for person in self.persons for key in person.keys)


def _code_problems(code: str, path: str) -> list[FieldError]:
    if not code.strip():
        return [FieldError(StatusCode.FIELD_MISSING, path, "the code is empty")]
    if len(code.strip()) > MAX_CODE_LENGTH:
        return [
            FieldError(
                StatusCode.FIELD_MISSING,
                path,
                f"the code has {len(code.strip())} characters; at most {MAX_CODE_LENGTH}",
            )
        ]
    return []


def _name_problems(name: str, path: str) -> list[FieldError]:
    if not name.strip():
        return [FieldError(StatusCode.FIELD_MISSING, path, "the name is empty")]
    if len(name.strip()) > MAX_NAME_LENGTH:
        return [
            FieldError(StatusCode.FIELD_MISSING, path, f"the name is longer than {MAX_NAME_LENGTH}")
        ]
    return []


def _identifier_problem(error: IdentifierError, path: str) -> FieldError:
    # A pgn is refused outright; anything else is a malformed field (code 1).
    return FieldError(StatusCode.FIELD_MISSING, path, error.message)


def validate_roster(
    roster: RosterInput,
    *,
    stored_group_codes: Set[str] = frozenset(),
    stored_subject_codes: Set[str] = frozenset(),
) -> Roster:
    """Validate and normalise ``roster``; raise ``ValidationFailed`` with every problem.

    ``stored_group_codes``: codes of the groups the school already has in this period;
    ``stored_subject_codes``: codes of the school's subjects. A pupil, teacher or group
    may refer to these or to the ones in the roster itself (codes 5 and 7 otherwise).
    """
    problems: list[FieldError] = []
    problems += _code_problems(roster.period_code, "period.code")
    try:
        validate_period(
            roster.period_start, roster.period_end, field_start="startDate", field_end="endDate"
        )
    except PeriodError as error:
        problems.append(FieldError(StatusCode.FIELD_MISSING, "period.endDate", error.message))

    subject_codes: set[str] = set()
    subjects: list[SubjectInput] = []
    for index, subject in enumerate(roster.subjects):
        path = f"subjects.{index}"
        found = _code_problems(subject.code, f"{path}.code")
        found += _name_problems(subject.name, f"{path}.name")
        code = subject.code.strip()
        if not found and code in subject_codes:
            found.append(
                FieldError(StatusCode.OTHER, f"{path}.code", f"subject {code!r} is listed twice")
            )
        problems += found
        subject_codes.add(code)
        subjects.append(SubjectInput(code, subject.name.strip()))
    known_subjects = subject_codes | set(stored_subject_codes)

    group_codes: set[str] = set()
    groups: list[GroupInput] = []
    for index, group in enumerate(roster.groups):
        path = f"groups.{index}"
        found = _code_problems(group.code, f"{path}.code")
        found += _name_problems(group.name, f"{path}.name")
        code = group.code.strip()
        if not found and code in group_codes:
            found.append(
                FieldError(StatusCode.OTHER, f"{path}.code", f"group {code!r} is listed twice")
            )
        subject_code = group.subject_code.strip() if group.subject_code else None
        if subject_code is not None and subject_code not in known_subjects:
            found.append(
                FieldError(
                    StatusCode.SUBJECT_UNKNOWN,
                    f"{path}.subjectCode",
                    f"subject {subject_code!r} is neither in this roster nor known for the school",
                )
            )
        problems += found
        group_codes.add(code)
        groups.append(GroupInput(code, group.name.strip(), subject_code))
    known_groups = group_codes | set(stored_group_codes)

    persons: list[PersonEntry] = []
    owner: dict[PersonKey, str] = {}

    def keys_of(
        path: str, kind: PersonKind, eck_id: str | None, identifiers: Iterable[IdentifierInput]
    ) -> tuple[list[PersonKey], list[FieldError]]:
        keys: list[PersonKey] = []
        errors: list[FieldError] = []
        if eck_id is not None:
            try:
                keys.append(
                    PersonKey(
                        PersonIdScheme.ECK_ID,
                        validate_person_identifier(PersonIdScheme.ECK_ID, eck_id),
                    )
                )
            except IdentifierError as error:
                errors.append(_identifier_problem(error, f"{path}.eckId"))
        for number, identifier in enumerate(identifiers):
            where = f"{path}.identifiers.{number}"
            if identifier.scheme == PersonIdScheme.ECK_ID.value and kind is PersonKind.TEACHER:
                errors.append(
                    FieldError(
                        StatusCode.OTHER,
                        f"{where}.scheme",
                        "teachers are identified by secondary identifiers only (NEPRI, NEPPI, "
                        "BPI, ASI, EDUID); there is no primary identifier for teachers",
                    )
                )
                continue
            try:
                value = validate_person_identifier(identifier.scheme, identifier.value)
            except IdentifierError as error:
                errors.append(_identifier_problem(error, f"{where}.value"))
                continue
            key = PersonKey(PersonIdScheme(identifier.scheme), value)
            if key.scheme is PersonIdScheme.ECK_ID and keys and keys[0].scheme is key.scheme:
                if keys[0].value != key.value:
                    errors.append(
                        FieldError(
                            StatusCode.OTHER,
                            f"{where}.value",
                            "a second, different ECK iD for the same pupil",
                        )
                    )
                continue
            if key not in keys:
                keys.append(key)
        if not keys and not errors:
            field_name = f"{path}.eckId" if kind is PersonKind.PUPIL else f"{path}.identifiers"
            errors.append(
                FieldError(
                    StatusCode.PERSON_ID_MISSING,
                    field_name,
                    "an ECK iD or a secondary identifier is required"
                    if kind is PersonKind.PUPIL
                    else "a teacher needs at least one secondary identifier",
                )
            )
        for key in keys:
            if key in owner:
                errors.append(
                    FieldError(
                        StatusCode.OTHER,
                        f"{path}.identifiers"
                        if key.scheme is not PersonIdScheme.ECK_ID
                        else f"{path}.eckId",
                        f"{key.scheme.value} {key.value!r} is also used by {owner[key]}",
                    )
                )
        return keys, errors

    def codes(
        path: str, values: Iterable[str], known: set[str], code: StatusCode, what: str
    ) -> tuple[frozenset[str], list[FieldError]]:
        clean: set[str] = set()
        errors: list[FieldError] = []
        for number, value in enumerate(values):
            stripped = value.strip()
            if stripped not in known:
                errors.append(
                    FieldError(
                        code,
                        f"{path}.{number}",
                        f"{what} {stripped!r} is neither in this roster nor known for the "
                        "school in this period",
                    )
                )
            clean.add(stripped)
        return frozenset(clean), errors

    entries: list[tuple[str, PersonKind, PupilInput | TeacherInput]] = [
        (f"pupils.{i}", PersonKind.PUPIL, pupil) for i, pupil in enumerate(roster.pupils)
    ] + [(f"teachers.{i}", PersonKind.TEACHER, t) for i, t in enumerate(roster.teachers)]
    for path, kind, entry in entries:
        eck_id = entry.eck_id if isinstance(entry, PupilInput) else None
        keys, errors = keys_of(path, kind, eck_id, entry.identifiers)
        groups_of, group_errors = codes(
            f"{path}.groupCodes", entry.group_codes, known_groups, StatusCode.GROUP_UNKNOWN, "group"
        )
        subjects_of: frozenset[str] = frozenset()
        subject_errors: list[FieldError] = []
        if isinstance(entry, PupilInput):
            subjects_of, subject_errors = codes(
                f"{path}.subjectCodes",
                entry.subject_codes,
                known_subjects,
                StatusCode.SUBJECT_UNKNOWN,
                "subject",
            )
        problems += errors + group_errors + subject_errors
        for key in keys:
            owner.setdefault(key, path)
        persons.append(
            PersonEntry(
                path=path,
                kind=kind,
                keys=tuple(keys),
                sector=entry.sector if isinstance(entry, PupilInput) else None,
                group_codes=groups_of,
                subject_codes=subjects_of,
            )
        )
    if problems:
        raise ValidationFailed(problems)
    return Roster(
        period_code=roster.period_code.strip(),
        period_start=roster.period_start,
        period_end=roster.period_end,
        subjects=tuple(subjects),
        groups=tuple(groups),
        persons=tuple(persons),
        complete=roster.complete,
    )


# --- matching entries to stored persons ---------------------------------------------------


@dataclass(frozen=True)
class StoredPerson:
    """A person the database already has, as far as matching needs to know."""

    person_id: int
    kind: PersonKind
    sector: Sector | None


@dataclass(frozen=True)
class Match:
    """How one roster entry maps to the database: an existing person or a new one.

    ``missing_keys``: identifiers to add to the person (all of them for a new one).
    ``set_sector``: the stored sector is unknown and the roster names it.
    """

    entry: PersonEntry
    person_id: int | None
    missing_keys: tuple[PersonKey, ...]
    set_sector: Sector | None = None


def match_persons(roster: Roster, stored: Mapping[PersonKey, StoredPerson]) -> tuple[Match, ...]:
    """Match every entry to at most one stored person; raise ``ValidationFailed``.

    ``stored`` maps each roster identifier that the database knows to its person
    (school-scoped identifiers already looked up within this school).
    """
    matches: list[Match] = []
    problems: list[FieldError] = []
    for entry in roster.persons:
        found = {stored[key].person_id: stored[key] for key in entry.keys if key in stored}
        if len(found) > 1:
            problems.append(
                FieldError(
                    StatusCode.OTHER,
                    entry.path,
                    f"the identifiers of this {entry.kind.lower()} belong to "
                    f"{len(found)} different persons; they are never merged automatically",
                )
            )
            continue
        if not found:
            matches.append(Match(entry, None, entry.keys))
            continue
        person = next(iter(found.values()))
        if person.kind is not entry.kind:
            problems.append(
                FieldError(
                    StatusCode.OTHER,
                    entry.path,
                    f"the identifiers belong to a {person.kind.lower()}, not a "
                    f"{entry.kind.lower()}",
                )
            )
            continue
        if entry.sector is not None and person.sector not in (None, entry.sector):
            problems.append(
                FieldError(
                    StatusCode.OTHER,
                    f"{entry.path}.sector",
                    f"the ECK iD is bound to sector {person.sector}, not {entry.sector}; a "
                    "pupil gets a new ECK iD in another sector",
                )
            )
            continue
        matches.append(
            Match(
                entry,
                person.person_id,
                tuple(key for key in entry.keys if key not in stored),
                entry.sector if person.sector is None and entry.sector is not None else None,
            )
        )
    if problems:
        raise ValidationFailed(problems)
    return tuple(matches)


# --- planning memberships ----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """Rows to insert and to delete for one kind of membership."""

    add: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    remove: frozenset[tuple[int, int]] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def plan(
    desired: Set[tuple[int, int]],
    stored: Set[tuple[int, int]],
    *,
    listed: Set[int],
    complete: bool,
) -> Change:
    """What to add and remove so that ``stored`` becomes ``desired``.

    Pairs are (person id, other id). Only the listed persons' pairs are removed,
    unless the roster is ``complete`` (then every stored pair not sent goes).
    """
    remove = {pair for pair in stored if pair not in desired and (complete or pair[0] in listed)}
    return Change(add=frozenset(set(desired) - set(stored)), remove=frozenset(remove))
