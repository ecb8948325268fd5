"""Root fields whose typed answers compile: each case answered compiled (no
fallback) and, through the test client, equal to the resolvers' answer (the
oracle of tests/conftest.py compares every operation on PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from compiler import CompiledAnswer, Fallback, ReadCompiler
from resolvers.clock import today
from tests.compiler.oracle import raw_connection
from tests.compiler.test_statements import _principal
from tests.conftest import _SCHEMA, TEST_SETTINGS, GraphQLClient

LOOKUP = """query ($id: ID, $identifier: OrganisationIdentifierInput) {
  organisation(id: $id, identifier: $identifier) {
    __typename
    ... on Organisation { rioId name level }
    ... on OrganisationNotFound { value scheme message }
    ... on InvalidIdentifier { checkedAgainst: scheme value problem message }
    ... on OrganisationAmbiguous { value message candidates { rioId } }
  }
}"""


@pytest.fixture
def postgres_only(backend: Any) -> None:
    if not backend.is_postgres:
        pytest.skip("compiled reads run on PostgreSQL")


async def _answered_compiled(session: Any, query: str, variables: dict[str, Any]) -> Any:
    caller = await _principal(session, "operator", "operator")
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(query), None, caller, variables)
    assert not isinstance(plan, Fallback), plan
    answer = await plan.execute(await raw_connection(session), variables, caller, today())
    assert isinstance(answer, CompiledAnswer), answer
    return answer


@pytest.mark.parametrize(
    ("variables", "typename"),
    [
        ({"identifier": {"value": "104A158"}}, "Organisation"),
        ({"identifier": {"value": "09qq", "scheme": "OIE_CODE"}}, "Organisation"),
        ({"identifier": {"value": "104a158"}}, "Organisation"),  # the upper-case retry
        ({"identifier": {"value": "999Z999"}}, "OrganisationNotFound"),
        ({"identifier": {"value": "nothing here"}}, "OrganisationNotFound"),
        ({"identifier": {"value": "99ZZ", "scheme": "OIE_CODE"}}, "OrganisationNotFound"),
        ({"identifier": {"value": "   "}}, "OrganisationNotFound"),  # empty: no lookup
        ({"identifier": {"value": "9", "scheme": "OIE_CODE"}}, "InvalidIdentifier"),
        ({"identifier": {"value": 'it\'s "quoted"', "scheme": "OA_ID"}}, "InvalidIdentifier"),
        ({"id": "1"}, "Organisation"),
        ({"id": "987654"}, "OrganisationNotFound"),
    ],
)
async def test_organisation_lookup_answers_compile(
    postgres_only: None, session: Any, gql: GraphQLClient, variables: dict[str, Any], typename: str
) -> None:
    answer = await _answered_compiled(session, LOOKUP, variables)
    assert f'"__typename" : "{typename}"' in answer.data or (
        f'"__typename":"{typename}"' in answer.data
    ), answer.data
    data = await gql.data(LOOKUP, variables)  # compared with the compiled answer
    assert data["organisation"]["__typename"] == typename


async def test_an_ambiguous_identifier_runs_on_the_resolvers(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    caller = await _principal(session, "operator", "operator")
    variables = {"identifier": {"value": "09QQ00"}}
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(LOOKUP), None, caller, variables)
    assert not isinstance(plan, Fallback)
    answer = await plan.execute(await raw_connection(session), variables, caller, today())
    assert isinstance(answer, Fallback)
    assert "ambiguous" in answer.reason
    data = await gql.data(LOOKUP, variables)
    assert data["organisation"]["__typename"] == "OrganisationAmbiguous"
