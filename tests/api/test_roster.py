"""School organisation data through the API (role sis), on SQLite and PostgreSQL:
bulk upsert, idempotency (same roster twice changes nothing, in a bounded number of
statements), removals, complete rosters, validation with field paths, and a pupil who
changes school within the sector keeping the same person record and licences."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.conftest import GraphQLClient, StatementCounter

SIS = ("demo-sis", "sis")

UPSERT = """
mutation ($input: SchoolRosterInput!) {
  schoolRosterUpsert(input: $input) {
    __typename
    ... on SchoolRosterUpserted {
      changed replayed school { rioId } period { code startDate endDate }
      personsCreated personsMatched identifiersAdded subjectsUpserted groupsUpserted
      enrolmentsAdded enrolmentsRemoved membershipsAdded membershipsRemoved
      subjectEnrolmentsAdded subjectEnrolmentsRemoved
    }
    ... on MutationError { code field message }
    ... on ValidationError { problems { code field message } }
  }
}
"""

PUPIL = """
query ($eckId: String!) {
  pupil(eckId: $eckId) {
    __typename
    ... on Person {
      id sector
      enrolments { period { code } school { rioId } }
      groups { code } subjects { code }
      licences { id status }
    }
  }
}
"""


def eck_id() -> str:
    return "https://ketenid.nl/pilot/" + secrets.token_hex(64)


def roster(school: str = "104A160", **kwargs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "school": {"value": school},
        "period": {"code": "2025-2026", "startDate": "2025-08-01", "endDate": "2026-07-31"},
        "subjects": [{"code": "WI", "name": "Wiskunde"}, {"code": "EN", "name": "Engels"}],
        "groups": [
            {"code": "1A", "name": "Klas 1A"},
            {"code": "1B", "name": "Klas 1B"},
            {"code": "WI-1", "name": "Wiskunde 1", "subjectCode": "WI"},
        ],
        "pupils": [],
        "teachers": [],
    }
    values.update(kwargs)
    return values


def pupil(eck: str, groups: list[str], subjects: list[str] | None = None, **kw: Any) -> dict:  # type: ignore[type-arg]
    return {"eckId": eck, "groupCodes": groups, "subjectCodes": subjects or [], **kw}


async def upsert(gql: GraphQLClient, input: dict[str, Any]) -> dict[str, Any]:
    data = await gql.data(UPSERT, {"input": input}, as_=SIS)
    return data["schoolRosterUpsert"]  # type: ignore[no-any-return]


async def person(gql: GraphQLClient, eck: str) -> dict[str, Any]:
    return (await gql.data(PUPIL, {"eckId": eck}, as_=SIS))["pupil"]  # type: ignore[no-any-return]


async def test_roster_stores_groups_subjects_pupils_and_teachers(gql: GraphQLClient) -> None:
    a, b = eck_id(), eck_id()
    answer = await upsert(
        gql,
        roster(
            pupils=[
                pupil(a, ["1A", "WI-1"], ["WI", "EN"], sector="VO"),
                pupil(b, ["1B"], ["EN"], identifiers=[{"scheme": "ASI", "value": "LYC-2"}]),
            ],
            teachers=[
                {
                    "identifiers": [{"scheme": "NEPRI", "value": "jansen@samenlyceum"}],
                    "groupCodes": ["1A"],
                }
            ],
        ),
    )
    assert answer["__typename"] == "SchoolRosterUpserted", answer
    assert answer["changed"] is True
    assert answer["school"] == {"rioId": "104A160"}
    assert answer["period"] == {
        "code": "2025-2026",
        "startDate": "2025-08-01",
        "endDate": "2026-07-31",
    }
    assert answer["personsCreated"] == 3
    assert answer["subjectsUpserted"] == 2
    assert answer["groupsUpserted"] == 3
    assert answer["enrolmentsAdded"] == 3
    assert answer["membershipsAdded"] == 4
    assert answer["subjectEnrolmentsAdded"] == 3
    found = await person(gql, a)
    assert found["sector"] == "VO"
    assert found["enrolments"] == [
        {"period": {"code": "2025-2026"}, "school": {"rioId": "104A160"}}
    ]
    assert sorted(g["code"] for g in found["groups"]) == ["1A", "WI-1"]
    assert sorted(s["code"] for s in found["subjects"]) == ["EN", "WI"]
    teacher = await gql.data(
        """{ person(identifier: {scheme: NEPRI, value: "jansen@samenlyceum"}) {
               ... on Person { kind groups { code } } } }""",
        as_=SIS,
    )
    assert teacher["person"] == {"kind": "TEACHER", "groups": [{"code": "1A"}]}
    by_school_key = await gql.data(
        """{ person(identifier: {scheme: ASI, value: "LYC-2", school: {value: "11CD"}}) {
               ... on Person { eckId } } }""",
        as_=SIS,
    )
    assert by_school_key["person"] == {"eckId": b}


async def test_the_same_roster_twice_changes_nothing_and_writes_nothing(
    gql: GraphQLClient, statements: StatementCounter
) -> None:
    input = roster(pupils=[pupil(eck_id(), ["1A", "WI-1"], ["WI"]) for _ in range(20)])
    first = await upsert(gql, input)
    assert first["changed"] is True
    statements.reset()
    second = await upsert(gql, input)
    assert second["__typename"] == "SchoolRosterUpserted"
    assert second["changed"] is False
    assert second["personsMatched"] == 20
    counts = {k: v for k, v in second.items() if isinstance(v, int) and not isinstance(v, bool)}
    assert counts == {**{k: 0 for k in counts}, "personsMatched": 20}
    writes = [
        s
        for s in statements.statements
        if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []


async def test_a_pupil_who_left_a_group_loses_that_membership_only(gql: GraphQLClient) -> None:
    a, b = eck_id(), eck_id()
    await upsert(gql, roster(pupils=[pupil(a, ["1A", "WI-1"], ["WI"]), pupil(b, ["1A"])]))
    # A partial roster: only pupil a, who moved from 1A to 1B and dropped WI.
    answer = await upsert(gql, roster(pupils=[pupil(a, ["1B", "WI-1"], [])]))
    assert answer["membershipsAdded"] == 1
    assert answer["membershipsRemoved"] == 1
    assert answer["subjectEnrolmentsRemoved"] == 1
    assert answer["enrolmentsRemoved"] == 0
    assert sorted(g["code"] for g in (await person(gql, a))["groups"]) == ["1B", "WI-1"]
    assert (await person(gql, a))["subjects"] == []
    # b was not in the partial roster: untouched.
    assert [g["code"] for g in (await person(gql, b))["groups"]] == ["1A"]


async def test_a_complete_roster_removes_who_is_no_longer_in_it(gql: GraphQLClient) -> None:
    a, b = eck_id(), eck_id()
    await upsert(gql, roster(pupils=[pupil(a, ["1A"], ["WI"]), pupil(b, ["1A"], ["EN"])]))
    answer = await upsert(gql, roster(pupils=[pupil(a, ["1A"], ["WI"])], complete=True))
    assert answer["enrolmentsRemoved"] == 1
    assert answer["membershipsRemoved"] == 1
    assert answer["subjectEnrolmentsRemoved"] == 1
    # The administration system no longer sees a pupil enrolled nowhere it serves...
    assert (await person(gql, b))["__typename"] == "PersonNotFound"
    # ...but the record stays (licences hang on it), only the enrolment goes.
    left = (await gql.data(PUPIL, {"eckId": b}))["pupil"]
    assert left["__typename"] == "Person"
    assert left["enrolments"] == []
    assert left["groups"] == []
    assert left["subjects"] == []


@pytest.mark.parametrize("size", [2000])
async def test_a_roster_of_two_thousand_pupils_goes_in_one_request_in_bounded_statements(
    gql: GraphQLClient, statements: StatementCounter, size: int
) -> None:
    groups = [{"code": f"G{n}", "name": f"Klas {n}"} for n in range(80)]
    pupils = [
        pupil(
            eck_id(),
            [f"G{n % 80}"],
            ["WI", "EN"],
            identifiers=[{"scheme": "ASI", "value": f"LYC{n:05d}"}],
        )
        for n in range(size)
    ]
    input = roster(groups=groups, pupils=pupils, complete=True)
    statements.reset()
    first = await upsert(gql, input)
    assert first["personsCreated"] == size
    assert first["enrolmentsAdded"] == size
    assert first["membershipsAdded"] == size
    assert first["subjectEnrolmentsAdded"] == 2 * size
    assert statements.count <= 30, statements.statements
    statements.reset()
    again = await upsert(gql, input)
    assert again["changed"] is False
    assert statements.count <= 15, statements.statements


async def test_every_problem_is_reported_with_its_field_path_and_nothing_is_written(
    gql: GraphQLClient,
) -> None:
    good = eck_id()
    answer = await upsert(
        gql,
        roster(
            pupils=[
                pupil(good, ["1A"]),
                pupil("https://ketenid.nl/pilot/abc", ["1A"]),
                {"identifiers": [{"scheme": "ASI", "value": "LL-9"}], "groupCodes": ["9Z"]},
                {"groupCodes": ["1A"]},
            ]
        ),
    )
    assert answer["__typename"] == "ValidationError"
    problems = [(p["code"], p["field"]) for p in answer["problems"]]
    assert problems == [
        (1, "pupils.1.eckId"),
        (7, "pupils.2.groupCodes.0"),
        (2, "pupils.3.eckId"),
    ]
    assert (await person(gql, good))["__typename"] == "PersonNotFound"


async def test_a_bsn_in_a_roster_is_refused_before_anything_is_read(gql: GraphQLClient) -> None:
    # The gateway-wide guard (resolvers/privacy.py) refuses it at the door, without
    # repeating it; domain/roster.py would refuse it too (refuse_pgn).
    bsn_pupil = {"identifiers": [{"scheme": "ASI", "value": "111222333"}], "groupCodes": ["1A"]}
    result = await gql.execute(UPSERT, {"input": roster(pupils=[bsn_pupil])}, as_=SIS)
    assert result.errors[0].extensions["reason"] == "pgn"
    assert result.errors[0].extensions["field"] == "input.pupils.0.identifiers.0.value"
    assert "111222333" not in str(result.errors[0].formatted)


async def test_unknown_school_is_code_9(gql: GraphQLClient) -> None:
    answer = await upsert(gql, roster(school="999A999"))
    assert answer["__typename"] == "ValidationError"
    assert (answer["code"], answer["field"]) == (9, "school")


async def test_only_an_administration_system_may_send_a_roster(gql: GraphQLClient) -> None:
    result = await gql.execute(UPSERT, {"input": roster()}, as_=("demo-portal", "portal"))
    assert result.errors[0].extensions["code"] == "FORBIDDEN"


async def test_a_repeated_reference_id_gets_the_same_answer(gql: GraphQLClient) -> None:
    input = roster(pupils=[pupil(eck_id(), ["1A"])], referenceId="sis-msg-1")
    first = await upsert(gql, input)
    second = await upsert(gql, input)
    assert first["replayed"] is False
    assert second["replayed"] is True
    assert second["personsCreated"] == first["personsCreated"] == 1
    conflict = await upsert(gql, {**input, "pupils": []})
    assert conflict["__typename"] == "ReferenceConflictError"


async def test_a_pupil_moving_to_another_school_in_the_sector_keeps_record_and_licences(
    gql: GraphQLClient,
) -> None:
    # A pupil of Het Voorbeeld College (104A158, vo) with a licence moves to Samen
    # Lyceum (104A160, vo): same ECK iD, so the same person and the same licences.
    data = await gql.data(
        """{ licences(first: 1, filter: {school: {value: "104A158"}, status: ACTIVATED}) {
               nodes { id person { id eckId } } } }"""
    )
    node = data["licences"]["nodes"][0]
    eck, person_id, licence_id = node["person"]["eckId"], node["person"]["id"], node["id"]
    answer = await upsert(gql, roster(pupils=[pupil(eck, ["1A"], sector="VO")]))
    assert answer["personsCreated"] == 0
    assert answer["personsMatched"] == 1
    moved = await person(gql, eck)
    assert moved["id"] == person_id
    # Licences are activation data, which the administration system does not
    # receive: the operator checks they stayed with the person.
    licences = (await gql.data(PUPIL, {"eckId": eck}))["pupil"]["licences"]
    assert licence_id in [lic["id"] for lic in licences]
    assert moved["licences"] == []
    assert {e["school"]["rioId"] for e in moved["enrolments"]} == {"104A158", "104A160"}
    # The old school's complete roster without the pupil ends the old enrolment only.


async def test_an_eck_id_of_another_sector_is_refused(gql: GraphQLClient) -> None:
    data = await gql.data(
        """{ licences(first: 1, filter: {school: {value: "104A158"}, status: ACTIVATED}) {
               nodes { person { eckId } } } }"""
    )
    eck = data["licences"]["nodes"][0]["person"]["eckId"]
    answer = await upsert(gql, roster(school="104A159", pupils=[pupil(eck, [], sector="PO")]))
    assert answer["__typename"] == "ValidationError"
    assert answer["problems"][0]["field"] == "pupils.0.sector"
