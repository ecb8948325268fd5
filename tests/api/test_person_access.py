"""Every path to a person follows the rule of `pupil(eckId:)` (issue 12, items 2 and 4).

The rule (domain/consent.py): a person, its identifiers and its school data are shown
to a caller that may read SCHOOL_ORGANISATION at a school where the person is
enrolled (a school administrator: its own pupils); a caller related to the person
(it takes part in an entitlement of the person, or the person's school works with
it) is told CONSENT_REQUIRED; anyone else gets exactly what an unknown identifier
gets. Each path is checked for each role, on SQLite and PostgreSQL.

The demo's consent at Het Voorbeeld College (104A158): the portals and the dashboard
have every data type with a mandate; the publisher has a mandate but no SCHOOL_
ORGANISATION activation; the shop has nothing; the administration system a mandate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import DataExchange, PersonIdentifier
from domain.entitlements import Variant
from tests.conftest import GraphQLClient
from tests.factories import (
    grant_consent,
    make_entitlement,
    make_licence,
    make_person,
    make_product,
    new_eck_id,
    school_id,
    supplier_id,
)

COLLEGE, BASISSCHOOL = "104A158", "104A159"
CALLERS: dict[str, tuple[str, ...]] = {
    "operator": ("operator", "operator"),
    "portal": ("demo-portal", "portal"),
    "dashboard": ("demo-dashboard", "dashboard"),
    "shop": ("demo-shop", "seller"),
    "publisher": ("demo-publisher", "licensor"),
    "sis": ("demo-sis", "sis"),
    "school": ("demo-school-admin", "school"),
    "other school": ("demo-school-admin", "school"),
    # Sells and publishes, but nothing of this pupil, and the college has no data
    # exchange or agreement with it: no relation to the pupil.
    "stranger": ("demo-combined", "seller", "licensor"),
}
SCHOOL_OF = {"school": COLLEGE, "other school": BASISSCHOOL}

SHOWN, CONSENT, NOT_FOUND, FORBIDDEN, ABSENT = (
    "SHOWN",
    "CONSENT_REQUIRED",
    "NOT_FOUND",
    "FORBIDDEN",
    "ABSENT",
)

#: What `pupil(eckId:)` answers each caller about the pupil of `world`.
DIRECT = {
    "operator": SHOWN,
    "portal": SHOWN,
    "dashboard": FORBIDDEN,  # no person lookups for dashboards at all
    "shop": CONSENT,
    "publisher": CONSENT,
    "sis": SHOWN,
    "school": SHOWN,
    "other school": NOT_FOUND,
    "stranger": NOT_FOUND,
}


@dataclass(frozen=True)
class World:
    college: int
    basisschool: int
    eck_id: str
    person: int
    entitlement: int
    licence: int
    college_asi: str
    basisschool_asi: str


@pytest.fixture
async def world(session: AsyncSession) -> World:
    college = await school_id(session, COLLEGE)
    basisschool = await school_id(session, BASISSCHOOL)
    product = await make_product(session)
    pupil = await make_person(session, school=college)
    entitlement = await make_entitlement(
        session, product=product, variant=Variant.SCHOOL, school=college
    )
    licence = await make_licence(session, entitlement=entitlement, person=pupil.id)
    college_asi, basisschool_asi = f"LLT{pupil.id}", f"BST{pupil.id}"
    session.add_all(
        [
            PersonIdentifier(
                person_id=pupil.id, scheme="ASI", scope=str(college), value=college_asi
            ),
            PersonIdentifier(
                person_id=pupil.id, scheme="ASI", scope=str(basisschool), value=basisschool_asi
            ),
        ]
    )
    await session.commit()
    assert pupil.eck_id is not None
    return World(
        college,
        basisschool,
        pupil.eck_id,
        pupil.id,
        entitlement.id,
        licence.id,
        college_asi,
        basisschool_asi,
    )


async def run(gql: GraphQLClient, role: str, query: str, variables: dict[str, Any]) -> Any:
    return await gql.execute(query, variables, as_=CALLERS[role], school=SCHOOL_OF.get(role))


def told(result: Any, path: list[Any]) -> str:
    """What the caller learnt about the person at `path` of the answer."""
    for error in result.errors or []:
        if error.path is None or path[: len(error.path)] == list(error.path):
            return str(error.extensions["code"])
    value: Any = result.data
    for key in path:
        if isinstance(key, int):
            if value is None or key >= len(value):
                return ABSENT
        elif not isinstance(value, dict) or key not in value:
            return ABSENT
        value = value[key]
    if value is None:
        return NOT_FOUND
    if value.get("__typename") == "PersonNotFound":
        return NOT_FOUND
    return SHOWN


PUPIL = """query ($eck: String!) { pupil(eckId: $eck) { __typename
  ... on Person { id eckId identifiers { scheme value } }
  ... on PersonNotFound { scheme value message } } }"""


@pytest.mark.parametrize("role", list(CALLERS))
async def test_pupil_lookup_follows_the_person_rule(
    gql: GraphQLClient, world: World, role: str
) -> None:
    result = await run(gql, role, PUPIL, {"eck": world.eck_id})
    assert told(result, ["pupil"]) == DIRECT[role], result.errors


# --- nested paths -----------------------------------------------------------------------

PERSON = "person { id eckId identifiers { scheme value } }"

#: (query, variables builder, path to the person, who may not reach the parent at all)
NESTED = {
    "licences -> person": (
        "query ($e: ID!) { licences(first: 10, filter: {entitlementId: $e}) "
        "{ nodes { " + PERSON + " } } }",
        lambda w: {"e": str(w.entitlement)},
        ["licences", "nodes", 0, "person"],
    ),
    "entitlement -> licences -> person": (
        "query ($e: ID!) { entitlement(id: $e) { licences { " + PERSON + " } } }",
        lambda w: {"e": str(w.entitlement)},
        ["entitlement", "licences", 0, "person"],
    ),
    "licenceHolders -> person": (
        'query ($p: String!) { licenceHolders(school: {value: "104A158"}, productId: $p) '
        "{ nodes { " + PERSON + " } } }",
        None,  # filled in by the test: the product code
        ["licenceHolders", "nodes", 0, "person"],
    ),
    "pupil -> licences -> person": (
        "query ($eck: String!) { pupil(eckId: $eck) { ... on Person { licences { "
        + PERSON
        + " } } } }",
        lambda w: {"eck": w.eck_id},
        ["pupil", "licences", 0, "person"],
    ),
}

#: What each caller is told about the person on each path: the same as `pupil`
#: wherever the caller reaches the parent (a licence it may see), ABSENT where the
#: parent itself is not the caller's, FORBIDDEN where the role may not ask.
EXPECTED_NESTED = {
    "licences -> person": {
        **DIRECT,
        "dashboard": SHOWN,
        "sis": FORBIDDEN,
        "other school": ABSENT,
        "stranger": ABSENT,
    },
    "entitlement -> licences -> person": {
        **DIRECT,
        "dashboard": SHOWN,
        "sis": FORBIDDEN,
        "school": FORBIDDEN,
        "other school": FORBIDDEN,
        "stranger": ABSENT,
    },
    "licenceHolders -> person": {
        **DIRECT,
        "dashboard": SHOWN,
        "sis": FORBIDDEN,
        "other school": FORBIDDEN,
        "stranger": ABSENT,
    },
    "pupil -> licences -> person": {
        **DIRECT,
        "sis": ABSENT,  # the administration system sees no licences
        "other school": ABSENT,
        "stranger": ABSENT,
    },
}


@pytest.mark.parametrize("path", list(NESTED))
@pytest.mark.parametrize("role", list(CALLERS))
async def test_every_nested_path_to_a_person_follows_the_same_rule(
    gql: GraphQLClient, session: AsyncSession, world: World, path: str, role: str
) -> None:
    query, variables, where = NESTED[path]
    if variables is None:
        from sqlalchemy import select

        from db.models import Entitlement, Product

        code = await session.scalar(
            select(Product.code)
            .join(Entitlement, Entitlement.product_id == Product.id)
            .where(Entitlement.id == world.entitlement)
        )
        values = {"p": code}
    else:
        values = variables(world)
    result = await run(gql, role, query, values)
    assert told(result, where) == EXPECTED_NESTED[path][role], (result.data, result.errors)


async def test_a_consent_required_person_leaves_the_rest_of_the_page(
    gql: GraphQLClient, world: World
) -> None:
    result = await run(
        gql,
        "shop",
        "query ($e: ID!) { licences(filter: {entitlementId: $e}) "
        "{ totalCount nodes { id status person { eckId } } } }",
        {"e": str(world.entitlement)},
    )
    assert result.data["licences"]["totalCount"] == 1
    (node,) = result.data["licences"]["nodes"]
    assert node["id"] == str(world.licence)
    assert node["person"] is None
    (error,) = result.errors
    assert error.path == ["licences", "nodes", 0, "person"]
    assert error.extensions == {"code": "CONSENT_REQUIRED", "statusCode": 4}


async def test_the_person_is_shown_once_the_school_consents(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    query = "query ($e: ID!) { licences(filter: {entitlementId: $e}) { nodes { " + PERSON + " } } }"
    where = ["licences", "nodes", 0, "person"]
    assert told(await run(gql, "shop", query, {"e": str(world.entitlement)}), where) == CONSENT
    await grant_consent(
        session,
        school=world.college,
        supplier=await supplier_id(session, "demo-shop"),
        role="seller",
        data_types=["SCHOOL_ORGANISATION"],
    )
    await session.commit()
    result = await run(gql, "shop", query, {"e": str(world.entitlement)})
    assert result.errors is None
    assert result.data["licences"]["nodes"][0]["person"]["eckId"] == world.eck_id
    # ...and taken away again when the school revokes it.
    await revoke(session, "demo-shop", world.college, "SCHOOL_ORGANISATION")
    assert told(await run(gql, "shop", query, {"e": str(world.entitlement)}), where) == CONSENT


async def revoke(session: AsyncSession, supplier: str, school: int, data_type: str) -> None:
    await session.execute(
        update(DataExchange)
        .where(
            DataExchange.supplier_id == await supplier_id(session, supplier),
            DataExchange.school_id == school,
            DataExchange.data_type == data_type,
        )
        .values(revoked_at=func.now())
    )
    await session.commit()


async def test_a_schools_own_administration_key_is_that_schools_data(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    await make_person_also_at_basisschool(session, world)
    query = PUPIL_IDS

    def asis(result: Any) -> set[str]:
        assert result.errors is None, result.errors
        return {i["value"] for i in result.data["pupil"]["identifiers"] if i["scheme"] == "ASI"}

    # The college's administrator sees the pupil, but only its own school's key.
    assert asis(await run(gql, "school", query, {"eck": world.eck_id})) == {world.college_asi}
    assert asis(await run(gql, "other school", query, {"eck": world.eck_id})) == {
        world.basisschool_asi
    }
    # A portal with the consent of both schools sees both; after the basisschool
    # revokes it, only the college's.
    assert asis(await run(gql, "portal", query, {"eck": world.eck_id})) == {
        world.college_asi,
        world.basisschool_asi,
    }
    await revoke(session, "demo-portal", world.basisschool, "SCHOOL_ORGANISATION")
    assert asis(await run(gql, "portal", query, {"eck": world.eck_id})) == {world.college_asi}
    assert asis(await run(gql, "operator", query, {"eck": world.eck_id})) == {
        world.college_asi,
        world.basisschool_asi,
    }


PUPIL_IDS = """query ($eck: String!) { pupil(eckId: $eck) {
  ... on Person { identifiers { scheme value } } } }"""


async def make_person_also_at_basisschool(session: AsyncSession, world: World) -> None:
    from db.models import Enrolment
    from tests.factories import current_period

    session.add(
        Enrolment(
            person_id=world.person,
            school_id=world.basisschool,
            period_id=await current_period(session, world.basisschool),
        )
    )
    await session.commit()


# --- no existence oracles ------------------------------------------------------------------


def same_answer(known: Any, unknown: Any, known_value: str, unknown_value: str) -> None:
    """Two answers that differ only where the caller's own input is repeated."""
    assert (known.errors is None) == (unknown.errors is None)
    text = repr((known.data, [e.formatted for e in known.errors or []]))
    other = repr((unknown.data, [e.formatted for e in unknown.errors or []]))
    assert re.sub(rf"\b{re.escape(known_value)}\b", "<input>", text) == re.sub(
        rf"\b{re.escape(unknown_value)}\b", "<input>", other
    )


@pytest.mark.parametrize("role", ["stranger", "other school"])
async def test_pupil_and_person_tell_an_unrelated_caller_nothing(
    gql: GraphQLClient, world: World, role: str
) -> None:
    unknown = new_eck_id()
    same_answer(
        await run(gql, role, PUPIL, {"eck": world.eck_id}),
        await run(gql, role, PUPIL, {"eck": unknown}),
        world.eck_id,
        unknown,
    )
    by_eck = """query ($v: String!) { person(identifier: {scheme: ECK_ID, value: $v}) {
      __typename ... on PersonNotFound { scheme value message } } }"""
    same_answer(
        await run(gql, role, by_eck, {"v": world.eck_id}),
        await run(gql, role, by_eck, {"v": unknown}),
        world.eck_id,
        unknown,
    )


async def test_a_school_administrator_gets_one_not_found_for_another_schools_pupil(
    gql: GraphQLClient, world: World
) -> None:
    by_asi = """query ($v: String!) { person(identifier: {scheme: ASI, value: $v,
      school: {value: "104A158"}}) {
        __typename ... on PersonNotFound { scheme value message } } }"""
    known = await run(gql, "other school", by_asi, {"v": world.college_asi})
    unknown = await run(gql, "other school", by_asi, {"v": "LL-nobody"})
    assert known.data["person"]["__typename"] == "PersonNotFound"
    same_answer(known, unknown, world.college_asi, "LL-nobody")


@pytest.mark.parametrize("role", ["stranger", "other school"])
async def test_licences_by_eck_id_tell_an_unrelated_caller_nothing(
    gql: GraphQLClient, world: World, role: str
) -> None:
    query = """query ($eck: String!) { licences(filter: {eckId: $eck}) {
      totalCount nodes { id } } }"""
    unknown = new_eck_id()
    known_answer = await run(gql, role, query, {"eck": world.eck_id})
    same_answer(known_answer, await run(gql, role, query, {"eck": unknown}), world.eck_id, unknown)
    assert known_answer.data == {"licences": {"totalCount": 0, "nodes": []}}


async def test_licences_by_eck_id_follow_the_person_rule(
    gql: GraphQLClient, world: World
) -> None:
    query = """query ($eck: String!) { licences(filter: {eckId: $eck}) { nodes { id } } }"""
    shown = await run(gql, "portal", query, {"eck": world.eck_id})
    assert shown.data["licences"]["nodes"] == [{"id": str(world.licence)}]
    # The shop sees the licence in its lists, but not which pupil holds it.
    refused = await run(gql, "shop", query, {"eck": world.eck_id})
    assert refused.errors[0].extensions["code"] == "CONSENT_REQUIRED"
    malformed = await run(gql, "stranger", query, {"eck": "not an eck id"})
    assert malformed.errors[0].extensions["code"] == "BAD_USER_INPUT"


async def test_other_suppliers_things_are_as_unknown_as_missing_ones(
    gql: GraphQLClient, world: World
) -> None:
    entitlement = "query ($id: ID!) { entitlement(id: $id) { id } }"
    mine = await run(gql, "stranger", entitlement, {"id": str(world.entitlement)})
    assert mine.errors is None
    assert mine.data == {"entitlement": None}
    assert (await run(gql, "stranger", entitlement, {"id": "987654"})).data == mine.data

    delivery = "query ($r: String!) { delivery(referenceId: $r) { id } }"
    demo = await run(gql, "stranger", delivery, {"r": "demo-1"})  # the shop's
    assert demo.errors is None
    assert demo.data == {"delivery": None}
    assert (await run(gql, "stranger", delivery, {"r": "no-such-ref"})).data == demo.data

    step = """mutation ($id: ID!) { entitlementCancel(input: {entitlementId: $id,
      referenceId: "oracle"}) { __typename ... on MutationError { code field message } } }"""
    same_answer(
        await run(gql, "stranger", step, {"id": str(world.entitlement)}),
        await run(gql, "stranger", step, {"id": "987654"}),
        str(world.entitlement),
        "987654",
    )
    block = """mutation ($id: ID!) { licenceBlock(input: {licenceId: $id}) {
      __typename ... on MutationError { code field message } } }"""
    same_answer(
        await run(gql, "stranger", block, {"id": str(world.licence)}),
        await run(gql, "stranger", block, {"id": "987654"}),
        str(world.licence),
        "987654",
    )
