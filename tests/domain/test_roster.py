"""School organisation data: validation, matching to stored persons, and the
membership plan of a roster upsert (domain/roster.py), without a database."""

from __future__ import annotations

from datetime import date

import pytest

from domain.errors import ValidationFailed
from domain.identifiers import PersonIdScheme, Sector
from domain.persons import PersonKind
from domain.roster import (
    GroupInput,
    IdentifierInput,
    PersonKey,
    PupilInput,
    RosterInput,
    StoredPerson,
    SubjectInput,
    TeacherInput,
    match_persons,
    plan,
    validate_roster,
)

ECK_A = "https://ketenid.nl/pilot/" + "a" * 128
ECK_B = "https://ketenid.nl/pilot/" + "b" * 128
VALID_BSN = "111222333"


def roster(**kwargs) -> RosterInput:  # type: ignore[no-untyped-def]
    values = {
        "period_code": "2025-2026",
        "period_start": date(2025, 8, 1),
        "period_end": date(2026, 7, 31),
        "subjects": (SubjectInput("WI", "Wiskunde"),),
        "groups": (GroupInput("1A", "Klas 1A"), GroupInput("WI-1", "Wiskunde 1", "WI")),
        "pupils": (PupilInput(eck_id=ECK_A, group_codes=("1A",), subject_codes=("WI",)),),
    }
    values.update(kwargs)
    return RosterInput(**values)  # type: ignore[arg-type]


def problems_of(spec: RosterInput, **kwargs) -> list[tuple[int, str | None]]:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as caught:
        validate_roster(spec, **kwargs)
    return [(int(p.code), p.field) for p in caught.value.errors]


def test_valid_roster_is_normalised() -> None:
    spec = roster(
        pupils=(
            PupilInput(
                eck_id="  " + ECK_A.upper().replace("HTTPS://KETENID.NL/PILOT/", ECK_A[:25]),
                identifiers=(IdentifierInput("ASI", " LL1 "),),
                sector=Sector.VO,
                group_codes=(" 1A",),
            ),
        )
    )
    result = validate_roster(spec)
    (pupil,) = result.persons
    assert pupil.kind is PersonKind.PUPIL
    assert pupil.keys == (
        PersonKey(PersonIdScheme.ECK_ID, ECK_A),
        PersonKey(PersonIdScheme.ASI, "LL1"),
    )
    assert pupil.keys[1].school_scoped
    assert pupil.group_codes == frozenset({"1A"})
    assert pupil.path == "pupils.0"


def test_pupil_without_any_identifier_is_code_2_on_its_eck_id() -> None:
    assert problems_of(roster(pupils=(PupilInput(),))) == [(2, "pupils.0.eckId")]


def test_pupil_without_eck_id_is_accepted_by_a_secondary_identifier() -> None:
    result = validate_roster(
        roster(pupils=(PupilInput(identifiers=(IdentifierInput("NEPRI", "piet@school"),)),))
    )
    assert result.persons[0].keys == (PersonKey(PersonIdScheme.NEPRI, "piet@school"),)


def test_every_problem_is_reported_with_its_path() -> None:
    spec = roster(
        groups=(GroupInput("1A", "Klas 1A", "XX"),),
        pupils=(
            PupilInput(eck_id=ECK_A),
            PupilInput(eck_id="https://ketenid.nl/pilot/123"),
            PupilInput(identifiers=(IdentifierInput("ASI", VALID_BSN),)),
            PupilInput(eck_id=ECK_B, group_codes=("1A", "9Z"), subject_codes=("GS",)),
        ),
        teachers=(TeacherInput(identifiers=(IdentifierInput("ECK_ID", ECK_B),)),),
    )
    assert problems_of(spec) == [
        (5, "groups.0.subjectCode"),
        (1, "pupils.1.eckId"),
        (1, "pupils.2.identifiers.0.value"),
        (7, "pupils.3.groupCodes.1"),
        (5, "pupils.3.subjectCodes.0"),
        (99, "teachers.0.identifiers.0.scheme"),
    ]


def test_a_pgn_is_refused_without_repeating_it() -> None:
    spec = roster(pupils=(PupilInput(identifiers=(IdentifierInput("ASI", VALID_BSN),)),))
    with pytest.raises(ValidationFailed) as caught:
        validate_roster(spec)
    assert "BSN" in caught.value.errors[0].message
    assert VALID_BSN not in caught.value.errors[0].message


def test_the_same_identifier_in_two_entries_is_refused() -> None:
    spec = roster(pupils=(PupilInput(eck_id=ECK_A), PupilInput(eck_id=ECK_A)))
    assert problems_of(spec) == [(99, "pupils.1.eckId")]


def test_codes_may_refer_to_groups_and_subjects_already_stored() -> None:
    spec = roster(subjects=(), groups=(), pupils=(PupilInput(eck_id=ECK_A, group_codes=("2B",)),))
    assert problems_of(spec) == [(7, "pupils.0.groupCodes.0")]
    result = validate_roster(spec, stored_group_codes={"2B"})
    assert result.persons[0].group_codes == {"2B"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"period_end": date(2025, 7, 1)}, [(1, "period.endDate")]),
        ({"period_code": " "}, [(1, "period.code")]),
        (
            {"subjects": (SubjectInput("WI", "Wiskunde"), SubjectInput("WI", "Wis"))},
            [(99, "subjects.1.code")],
        ),
        ({"groups": (GroupInput("1A", ""),)}, [(1, "groups.0.name")]),
    ],
)
def test_period_subject_and_group_problems(changes: dict, expected: list) -> None:  # type: ignore[type-arg]
    spec = roster(**changes, pupils=())
    assert problems_of(spec) == expected


def test_teacher_needs_a_secondary_identifier() -> None:
    assert problems_of(roster(teachers=(TeacherInput(),))) == [(2, "teachers.0.identifiers")]


# --- matching ------------------------------------------------------------------------------

KEY_A = PersonKey(PersonIdScheme.ECK_ID, ECK_A)
KEY_ASI = PersonKey(PersonIdScheme.ASI, "LL1")


def test_entry_matching_a_stored_person_adds_only_missing_identifiers() -> None:
    spec = validate_roster(
        roster(pupils=(PupilInput(eck_id=ECK_A, identifiers=(IdentifierInput("ASI", "LL1"),)),))
    )
    (match,) = match_persons(spec, {KEY_A: StoredPerson(7, PersonKind.PUPIL, Sector.VO)})
    assert match.person_id == 7
    assert match.missing_keys == (KEY_ASI,)
    assert match.set_sector is None


def test_unknown_entry_becomes_a_new_person() -> None:
    spec = validate_roster(roster())
    (match,) = match_persons(spec, {})
    assert match.person_id is None
    assert match.missing_keys == (KEY_A,)


def test_identifiers_of_two_persons_are_never_merged() -> None:
    spec = validate_roster(
        roster(pupils=(PupilInput(eck_id=ECK_A, identifiers=(IdentifierInput("ASI", "LL1"),)),))
    )
    stored = {
        KEY_A: StoredPerson(7, PersonKind.PUPIL, None),
        KEY_ASI: StoredPerson(8, PersonKind.PUPIL, None),
    }
    with pytest.raises(ValidationFailed) as caught:
        match_persons(spec, stored)
    assert caught.value.errors[0].field == "pupils.0"


def test_a_teacher_is_not_taken_for_a_pupil() -> None:
    spec = validate_roster(
        roster(pupils=(PupilInput(identifiers=(IdentifierInput("ASI", "LL1"),)),))
    )
    with pytest.raises(ValidationFailed):
        match_persons(spec, {KEY_ASI: StoredPerson(8, PersonKind.TEACHER, None)})


def test_an_eck_id_of_another_sector_is_refused_and_an_unknown_sector_is_filled_in() -> None:
    spec = validate_roster(roster(pupils=(PupilInput(eck_id=ECK_A, sector=Sector.VO),)))
    with pytest.raises(ValidationFailed) as caught:
        match_persons(spec, {KEY_A: StoredPerson(7, PersonKind.PUPIL, Sector.PO)})
    assert caught.value.errors[0].field == "pupils.0.sector"
    (match,) = match_persons(spec, {KEY_A: StoredPerson(7, PersonKind.PUPIL, None)})
    assert match.set_sector is Sector.VO


# --- planning ------------------------------------------------------------------------------


def test_plan_removes_only_the_listed_persons_pairs_unless_complete() -> None:
    stored = {(1, 10), (1, 11), (2, 10)}
    desired = {(1, 10), (1, 12)}
    partial = plan(desired, stored, listed={1}, complete=False)
    assert partial.add == {(1, 12)}
    assert partial.remove == {(1, 11)}
    whole = plan(desired, stored, listed={1}, complete=True)
    assert whole.remove == {(1, 11), (2, 10)}


def test_plan_of_the_same_roster_again_is_empty() -> None:
    pairs = {(1, 10), (2, 10)}
    assert plan(pairs, pairs, listed={1, 2}, complete=True).empty
