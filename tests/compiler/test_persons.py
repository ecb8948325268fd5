"""Every path to a person compiles (issue 14): `pupil`, `person`, a licence's holder
on every nested path, `licenceHolders` and a licence filter by ECK iD, for every
caller of the person rule's matrix (tests/api/test_person_access.py) and as the
consent of the school changes. Each case is answered compiled in one statement, and
the test client compares it with the resolvers' answer (data, errors with their
paths, audit reads)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from graphql import parse
from sqlalchemy import select

from compiler import CompiledAnswer, Fallback, ReadCompiler
from db.models import Entitlement, Organisation, Product, Supplier
from domain.roles import Role
from resolvers.auth import Principal
from resolvers.clock import today
from tests.api.test_person_access import CALLERS, NESTED, PUPIL, SCHOOL_OF, World, revoke
from tests.api.test_person_access import world as person_world  # noqa: F401 (a fixture)
from tests.compiler.oracle import raw_connection
from tests.compiler.test_statements import Counting
from tests.conftest import _SCHEMA, TEST_SETTINGS, GraphQLClient
from tests.factories import grant_consent, supplier_id


@pytest.fixture
def world(person_world: World) -> World:  # noqa: F811
    """The pupil, its licence and its schools' consent of the person rule's tests."""
    return person_world


async def _caller(session: Any, role: str) -> Principal:
    code, *roles = CALLERS[role]
    pk = await session.scalar(select(Supplier.id).where(Supplier.code == code))
    school = SCHOOL_OF.get(role)
    school_id = (
        await session.scalar(select(Organisation.id).where(Organisation.rio_id == school))
        if school
        else None
    )
    return replace(
        Principal(pk, frozenset(Role(r) for r in roles), supplier_code=code), school_id=school_id
    )


async def both_ways(
    session: Any, gql: GraphQLClient, role: str, query: str, variables: dict[str, Any]
) -> tuple[CompiledAnswer, Any]:
    """The compiled answer (asserted compiled, in one statement) and the resolvers'
    result, which the test client compared with it."""
    caller = await _caller(session, role)
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(query), None, caller, variables)
    assert not isinstance(plan, Fallback), (role, plan)
    connection = Counting(await raw_connection(session))
    answer = await plan.execute(connection, variables, caller, today())
    assert isinstance(answer, CompiledAnswer), (role, answer)
    # One statement; none where the role gate refuses without asking the database.
    assert len(connection.statements) == (1 if plan.needs_connection else 0)
    result = await gql.execute(query, variables, as_=CALLERS[role], school=SCHOOL_OF.get(role))
    return answer, result


def _codes(answer: CompiledAnswer) -> list[str]:
    return sorted(e["extensions"]["code"] for e in answer.errors)


@pytest.mark.parametrize("role", list(CALLERS))
async def test_pupil_and_person_compile_for_every_caller(
    postgres_only: None, session: Any, gql: GraphQLClient, world: World, role: str
) -> None:
    await both_ways(session, gql, role, PUPIL, {"eck": world.eck_id})
    by_scheme = """query ($i: PersonIdentifierInput!) { person(identifier: $i) { __typename
      ... on Person { id kind sector eckId identifiers { scheme value }
        enrolments { period { code startDate endDate } school { rioId } }
        groups { code name } subjects { code name }
        entitlements { id status } licences { id status hasAccess person { id } } }
      ... on PersonNotFound { scheme value message }
      ... on InvalidIdentifier { scheme value problem message } } }"""
    for identifier in (
        {"scheme": "ECK_ID", "value": world.eck_id},
        {"scheme": "ASI", "value": world.college_asi, "school": {"value": "104A158"}},
        {"scheme": "ASI", "value": "LL-nobody", "school": {"value": "104A158"}},
        {"scheme": "ASI", "value": world.college_asi},  # no school: nothing looked up
        {"scheme": "ECK_ID", "value": "not an eck id"},  # InvalidIdentifier
    ):
        await both_ways(session, gql, role, by_scheme, {"i": identifier})


@pytest.mark.parametrize("path", list(NESTED))
@pytest.mark.parametrize("role", list(CALLERS))
async def test_every_nested_path_to_a_person_compiles(
    postgres_only: None, session: Any, gql: GraphQLClient, world: World, path: str, role: str
) -> None:
    query, variables, where = NESTED[path]
    if variables is None:
        code = await session.scalar(
            select(Product.code)
            .join(Entitlement, Entitlement.product_id == Product.id)
            .where(Entitlement.id == world.entitlement)
        )
        values = {"p": code}
    else:
        values = variables(world)
    answer, result = await both_ways(session, gql, role, query, values)
    if role == "shop" and path != "pupil -> licences -> person":
        # A related caller: the holder refused at its own path, the page kept.
        (error,) = answer.errors
        assert error["path"] == where
        assert error["extensions"]["code"] == "CONSENT_REQUIRED"


async def test_a_holder_follows_the_schools_consent_compiled(
    postgres_only: None, session: Any, gql: GraphQLClient, world: World
) -> None:
    query = (
        "query ($e: ID!) { licences(filter: {entitlementId: $e}) "
        "{ nodes { id person { id eckId identifiers { scheme value } } } } }"
    )
    variables = {"e": str(world.entitlement)}
    answer, _ = await both_ways(session, gql, "shop", query, variables)
    assert _codes(answer) == ["CONSENT_REQUIRED"]
    assert not [read for read in answer.reads if read[1] == "read.persons"]
    await grant_consent(
        session,
        school=world.college,
        supplier=await supplier_id(session, "demo-shop"),
        role="seller",
        data_types=["SCHOOL_ORGANISATION"],
    )
    await session.commit()
    answer, _ = await both_ways(session, gql, "shop", query, variables)
    assert not answer.errors
    assert (world.college, "read.persons", "person", None) in answer.reads
    await revoke(session, "demo-shop", world.college, "SCHOOL_ORGANISATION")
    answer, _ = await both_ways(session, gql, "shop", query, variables)
    assert _codes(answer) == ["CONSENT_REQUIRED"]


@pytest.mark.parametrize("role", list(CALLERS))
async def test_licences_by_eck_id_compile_for_every_caller(
    postgres_only: None, session: Any, gql: GraphQLClient, world: World, role: str
) -> None:
    query = """query ($eck: String!) { licences(filter: {eckId: $eck}) {
      totalCount nodes { id person { eckId } } } }"""
    if role in ("sis", "school", "other school"):
        return  # licences are not theirs to list (the role gate, compiled elsewhere)
    answer, result = await both_ways(session, gql, role, query, {"eck": world.eck_id})
    if role == "shop":
        assert _codes(answer) == ["CONSENT_REQUIRED"]
        assert answer.data == "null"


async def test_licence_holders_compile_with_their_refusals(
    postgres_only: None, session: Any, gql: GraphQLClient, world: World
) -> None:
    code = await session.scalar(
        select(Product.code)
        .join(Entitlement, Entitlement.product_id == Product.id)
        .where(Entitlement.id == world.entitlement)
    )
    query = """query ($s: OrganisationIdentifierInput!, $p: String!, $first: Int) {
      licenceHolders(school: $s, productId: $p, first: $first) {
        totalCount pageInfo { hasNextPage endCursor }
        nodes { id status hasAccess product { productId } person { eckId } } } }"""
    college = {"value": "104A158"}
    answer, result = await both_ways(session, gql, "portal", query, {"s": college, "p": code})
    assert result.data["licenceHolders"]["totalCount"] >= 1
    assert (world.college, "read.licences", "licence", None) in answer.reads
    # The demo product held through a set (its containers count too), paged.
    await both_ways(session, gql, "operator", query, {"s": college, "p": "9789000000012"})
    await both_ways(
        session, gql, "operator", query, {"s": college, "p": "9789000000012", "first": 1}
    )
    # A school the caller may not read ACTIVATIONS of: refused at the root, compiled.
    answer, _ = await both_ways(session, gql, "other school", query, {"s": college, "p": code})
    assert answer.data == "null"
    assert _codes(answer) == ["FORBIDDEN"]
    await revoke(session, "demo-portal", world.college, "ACTIVATIONS")
    answer, _ = await both_ways(session, gql, "portal", query, {"s": college, "p": code})
    assert answer.data == "null"
    assert _codes(answer) == ["CONSENT_REQUIRED"]


async def test_a_recipients_refused_entitlement_compiles(
    postgres_only: None, session: Any, gql: GraphQLClient, world: World
) -> None:
    query = "query ($id: ID!) { entitlement(id: $id) { id status licences { id } } }"
    variables = {"id": str(world.entitlement)}
    answer, _ = await both_ways(session, gql, "portal", query, variables)
    assert not answer.errors
    await revoke(session, "demo-portal", world.college, "ENTITLEMENTS")
    answer, result = await both_ways(session, gql, "portal", query, variables)
    assert answer.data == '{"entitlement":null}'
    assert _codes(answer) == ["CONSENT_REQUIRED"]
    assert not answer.reads
