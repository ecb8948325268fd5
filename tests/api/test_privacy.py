"""Privacy through the API: the school reads its audit trail, including who read
its pupils' data; the operator erases a pupil, keeping anonymised licences and
counts, with the erasure itself in the trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from db.models import Licence
from tests.api.test_consent import SCHOOL_ADMIN
from tests.api.test_delivery import PORTAL
from tests.conftest import GraphQLClient

TRAIL = """query ($after: String) { auditTrail(school: {value: "104A158"}, first: 100,
  after: $after) { pageInfo { hasNextPage endCursor }
  nodes { action objectType role supplier { code } } } }"""


async def trail(gql: GraphQLClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql.execute(TRAIL, {"after": after}, as_=SCHOOL_ADMIN,
                                  school="104A158")).data["auditTrail"]
        entries += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return entries
        after = page["pageInfo"]["endCursor"]


async def a_pupil(gql: GraphQLClient) -> str:
    data = await gql.data("""{ licences(first: 1, filter: {school: {value: "104A158"}}) {
        nodes { person { eckId } } } }""")
    return data["licences"]["nodes"][0]["person"]["eckId"]  # type: ignore[no-any-return]


async def test_school_sees_who_read_its_pupils(gql: GraphQLClient) -> None:
    eck = await a_pupil(gql)
    await gql.data("query ($e: String!) { pupil(eckId: $e) { __typename } }", {"e": eck},
                   as_=PORTAL)
    reads = [e for e in await trail(gql) if e["action"] == "read.person"]
    assert {"action": "read.person", "objectType": "person", "role": "portal",
            "supplier": {"code": "demo-portal"}} in reads


async def test_school_cannot_read_another_schools_trail(gql: GraphQLClient) -> None:
    result = await gql.execute(TRAIL.replace("104A158", "104A159"), as_=SCHOOL_ADMIN,
                               school="104A158")
    assert result.errors[0].extensions["code"] == "FORBIDDEN"


async def test_erasure_keeps_anonymised_licences_and_is_audited(
    gql: GraphQLClient, session: Any
) -> None:
    eck = await a_pupil(gql)
    licences_before = await session.scalar(select(func.count()).select_from(Licence))
    erased = await gql.data(
        """mutation ($e: String!) { personErase(input: {identifier: {scheme: ECK_ID, value: $e},
             reason: "request of the school, ref 2026-17"}) {
             __typename ... on PersonErased { identifiersRemoved licencesAnonymised } } }""",
        {"e": eck})
    result = erased["personErase"]
    assert result["__typename"] == "PersonErased"
    assert result["identifiersRemoved"] >= 2
    assert result["licencesAnonymised"] >= 1
    assert await session.scalar(select(func.count()).select_from(Licence)) == licences_before
    gone = await gql.data("query ($e: String!) { pupil(eckId: $e) { __typename } }", {"e": eck})
    assert gone["pupil"]["__typename"] == "PersonNotFound"
    assert "person.erase" in [e["action"] for e in await trail(gql)]


async def test_only_the_operator_erases(gql: GraphQLClient) -> None:
    result = await gql.execute(
        """mutation { personErase(input: {identifier: {scheme: ECK_ID, value: "x"},
             reason: "r"}) { __typename } }""", as_=SCHOOL_ADMIN, school="104A158")
    assert result.errors[0].extensions["code"] == "FORBIDDEN"
