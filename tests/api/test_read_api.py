"""The read API against a real database (SQLite and PostgreSQL): lookups by any
identifier, typed answers for unknown/ambiguous/malformed ones, pagination,
filters, authentication, and constant statement counts for nested pages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GraphQLClient, StatementCounter

ORG_LOOKUP = """
query ($identifier: OrganisationIdentifierInput!) {
  organisation(identifier: $identifier) {
    __typename
    ... on Organisation {
      rioId level name
      identifiers { scheme value }
      boards { rioId }
      locations { rioId }
    }
    ... on OrganisationAmbiguous { message candidates { rioId level } }
    ... on OrganisationNotFound { message }
    ... on InvalidIdentifier { problem message }
  }
}
"""


async def lookup(gql: GraphQLClient, value: str, scheme: str | None = None) -> Any:
    identifier: dict[str, Any] = {"value": value}
    if scheme:
        identifier["scheme"] = scheme
    data = await gql.data(ORG_LOOKUP, {"identifier": identifier})
    return data["organisation"]


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("104A158", "OA_ID"),
        ("104A158", None),
        ("09QQ", "OIE_CODE"),
        ("09qq", None),
        ("100158", "BP_ID"),
        ("SOM-09QQ", "AS_ID"),
    ],
)
async def test_school_is_found_by_any_of_its_identifiers(
    gql: GraphQLClient, value: str, scheme: str | None
) -> None:
    found = await lookup(gql, value, scheme)
    assert found["__typename"] == "Organisation"
    assert found["rioId"] == "104A158"
    assert {"scheme": "OIE_CODE", "value": "09QQ"} in found["identifiers"]
    assert {"scheme": "OA_ID", "value": "104A158"} in found["identifiers"]
    assert [b["rioId"] for b in found["boards"]] == ["100B001"]
    assert [loc["rioId"] for loc in found["locations"]] == ["112X995", "112X996"]


async def test_brin6_shared_by_two_locations_is_reported_as_ambiguous(gql: GraphQLClient) -> None:
    found = await lookup(gql, "09QQ00", "VE_CODE")
    assert found["__typename"] == "OrganisationAmbiguous"
    assert sorted(c["rioId"] for c in found["candidates"]) == ["112X995", "112X996"]
    assert "primary id" in found["message"]


async def test_provider_under_two_boards_lists_both(gql: GraphQLClient) -> None:
    found = await lookup(gql, "104A160", "OA_ID")
    assert sorted(b["rioId"] for b in found["boards"]) == ["100B001", "100B002"]


async def test_unknown_identifier_is_a_typed_not_found(gql: GraphQLClient) -> None:
    found = await lookup(gql, "99ZZ00", "VE_CODE")
    assert found["__typename"] == "OrganisationNotFound"
    assert "99ZZ00" in found["message"]


async def test_malformed_identifier_says_what_is_wrong(gql: GraphQLClient) -> None:
    found = await lookup(gql, "9QQ00", "VE_CODE")
    assert found["__typename"] == "InvalidIdentifier"
    assert found["problem"] == "format"


async def test_primary_id_of_wrong_level_is_not_found(gql: GraphQLClient) -> None:
    # 104A158 is a provider id; as a board id it must not match anything.
    found = await lookup(gql, "104A158", "OB_ID")
    assert found["__typename"] in {"OrganisationNotFound", "InvalidIdentifier"}


PUPIL = """
query ($eckId: String!) {
  pupil(eckId: $eckId) {
    __typename
    ... on Person {
      eckId kind sector
      identifiers { scheme value }
      enrolments { period { code } school { rioId } }
      groups { code }
      subjects { code }
      licences { status product { productId } }
    }
    ... on PersonNotFound { message }
    ... on InvalidIdentifier { problem message }
  }
}
"""


async def first_pupil_eck_id(gql: GraphQLClient, school: str = "104A158") -> str:
    data = await gql.data(
        """query ($school: OrganisationIdentifierInput!) {
             licences(first: 1, filter: {school: $school, status: ACTIVATED}) {
               nodes { person { eckId } }
             }
           }""",
        {"school": {"value": school, "scheme": "OA_ID"}},
    )
    return data["licences"]["nodes"][0]["person"]["eckId"]  # type: ignore[no-any-return]


async def test_pupil_by_eck_id_shows_school_organisation_and_licences(gql: GraphQLClient) -> None:
    eck_id = await first_pupil_eck_id(gql)
    pupil = (await gql.data(PUPIL, {"eckId": eck_id}))["pupil"]
    assert pupil["__typename"] == "Person"
    assert pupil["eckId"] == eck_id
    assert pupil["kind"] == "PUPIL"
    assert pupil["sector"] == "VO"
    assert pupil["enrolments"][0]["school"]["rioId"] == "104A158"
    assert len(pupil["groups"]) == 1
    assert pupil["licences"]


async def test_pupil_found_with_harmless_formatting_differences(gql: GraphQLClient) -> None:
    eck_id = await first_pupil_eck_id(gql)
    prefix, _, digest = eck_id.rpartition("/")
    variant = f"  {prefix}/{digest.upper()}  "
    pupil = (await gql.data(PUPIL, {"eckId": variant}))["pupil"]
    assert pupil["__typename"] == "Person"
    assert pupil["eckId"] == eck_id


@pytest.mark.parametrize(
    ("eck_id", "problem"),
    [
        ("https://example.org/201703/" + "a" * 128, "prefix"),
        ("https://ketenid.nl/201703/" + "a" * 127, "length"),
        ("https://ketenid.nl/201703/" + "g" * 128, "alphabet"),
    ],
)
async def test_malformed_eck_id_names_the_part_that_is_wrong(
    gql: GraphQLClient, eck_id: str, problem: str
) -> None:
    pupil = (await gql.data(PUPIL, {"eckId": eck_id}))["pupil"]
    assert pupil["__typename"] == "InvalidIdentifier"
    assert pupil["problem"] == problem


async def test_unknown_eck_id_is_a_typed_not_found(gql: GraphQLClient) -> None:
    pupil = (await gql.data(PUPIL, {"eckId": "https://ketenid.nl/201703/" + "0" * 128}))["pupil"]
    assert pupil["__typename"] == "PersonNotFound"


async def test_pupil_by_school_scoped_administration_key(gql: GraphQLClient) -> None:
    data = await gql.data(
        """{ person(identifier: {scheme: ASI, value: "LL100000",
                                 school: {value: "09QQ", scheme: OIE_CODE}}) {
               __typename ... on Person { kind enrolments { school { rioId } } } } }"""
    )
    assert data["person"]["__typename"] == "Person"
    assert data["person"]["enrolments"][0]["school"]["rioId"] == "104A158"


async def test_school_scoped_identifier_without_school_is_refused_clearly(
    gql: GraphQLClient,
) -> None:
    data = await gql.data(
        """{ person(identifier: {scheme: ASI, value: "LL100000"}) {
               __typename ... on PersonNotFound { message } } }"""
    )
    assert data["person"]["__typename"] == "PersonNotFound"
    assert "within a school" in data["person"]["message"]


async def test_teacher_found_by_nlEduPersonRealId(gql: GraphQLClient) -> None:
    data = await gql.data(
        """{ person(identifier: {scheme: NEPRI, value: "docent1@voorbeeldcollege.nl"}) {
               __typename ... on Person { kind eckId } } }"""
    )
    assert data["person"] == {"__typename": "Person", "kind": "TEACHER", "eckId": None}


# --- lists, pagination, filters --------------------------------------------------------


async def test_pages_follow_each_other_without_gaps_or_repeats(gql: GraphQLClient) -> None:
    query = """query ($after: String) {
      organisations(first: 3, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } nodes { rioId }
      }
    }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await gql.data(query, {"after": after}))["organisations"]
        seen += [n["rioId"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == page["totalCount"] == 8


async def test_page_size_is_bounded(gql: GraphQLClient) -> None:
    result = await gql.execute("{ products(first: 1000) { nodes { name } } }")
    assert result.errors is not None
    assert "between 1 and 100" in result.errors[0].message
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"


async def test_malformed_cursor_is_a_clear_error(gql: GraphQLClient) -> None:
    result = await gql.execute('{ products(after: "not-a-cursor") { nodes { name } } }')
    assert result.errors is not None
    assert "cursor" in result.errors[0].message


async def test_organisations_filtered_by_board_and_level(gql: GraphQLClient) -> None:
    data = await gql.data(
        """{ organisations(filter: {level: PROVIDER, board: {value: "100B002"}}) {
               nodes { rioId } } }"""
    )
    assert [n["rioId"] for n in data["organisations"]["nodes"]] == ["104A160"]


async def test_products_filtered_by_type_show_set_components(gql: GraphQLClient) -> None:
    data = await gql.data(
        "{ products(filter: {type: SET}) { nodes {"
        " type components { type } publisher { code } } } }"
    )
    (product,) = data["products"]["nodes"]
    assert product["publisher"]["code"] == "demo-combined"
    assert [c["type"] for c in product["components"]] == ["DIGITAL"] * 3


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("LINK_READY", 2),
        ("PROVISIONED", 1),
        ("ENTITLED", 1),
        ("CANCELLED", 1),
        ("BLOCKED", 1),
        ("ENDED", 1),
    ],
)
async def test_entitlements_filtered_by_status_including_derived_ended(
    gql: GraphQLClient, status: str, expected: int
) -> None:
    data = await gql.data(
        """query ($status: [EntitlementStatus!]) {
             entitlements(filter: {school: {value: "104A158"}, status: $status}) {
               totalCount nodes { status } } }""",
        {"status": [status]},
    )
    page = data["entitlements"]
    assert page["totalCount"] == expected
    assert {n["status"] for n in page["nodes"]} == {status}


async def test_entitlement_shows_recipients_with_failure_codes(gql: GraphQLClient) -> None:
    data = await gql.data(
        """{ entitlements(filter: {status: [PROVISIONED]}) { nodes {
               recipients { role state failureCode supplier { code } } } } }"""
    )
    recipients = data["entitlements"]["nodes"][0]["recipients"]
    portal = next(r for r in recipients if r["role"] == "PORTAL")
    assert portal == {
        "role": "PORTAL",
        "state": "FAILED",
        "failureCode": 7,
        "supplier": {"code": "demo-portal"},
    }


async def test_unknown_product_in_filter_is_code_11(gql: GraphQLClient) -> None:
    result = await gql.execute(
        '{ entitlements(filter: {productId: "9789000000005"}) { nodes { id } } }'
    )
    assert result.errors is not None
    assert result.errors[0].extensions["statusCode"] == 11


NESTED_PAGE = """query ($first: Int!) {
  entitlements(first: $first) {
    nodes {
      id status
      school { rioId identifiers { value } boards { rioId } }
      product { productId publisher { code } components { productId } }
      recipients { state supplier { code } }
      licences { status person { eckId } }
    }
  }
}"""


async def test_nested_page_costs_the_same_statements_for_1_or_50_rows(
    gql: GraphQLClient, statements: StatementCounter, session: Any
) -> None:
    # Make 50+ entitlements: the demo has 9; copy one 45 times in this test's
    # transaction (rolled back afterwards).
    from sqlalchemy import insert, select

    from db.models import Entitlement

    template = (await session.scalars(select(Entitlement).limit(1))).one()
    columns = {
        c.key: getattr(template, c.key)
        for c in Entitlement.__table__.columns
        if c.key not in {"id", "created_at", "updated_at"}
    }
    await session.execute(insert(Entitlement), [columns] * 45)
    await session.commit()  # into the test's outer transaction, rolled back at the end

    statements.reset()
    one = await gql.data(NESTED_PAGE, {"first": 1})
    single = statements.count
    statements.reset()
    fifty = await gql.data(NESTED_PAGE, {"first": 50})
    assert len(one["entitlements"]["nodes"]) == 1
    assert len(fifty["entitlements"]["nodes"]) == 50
    assert statements.count == single, statements.statements


# --- authentication ----------------------------------------------------------------


async def test_missing_token_is_unauthenticated(gql: GraphQLClient) -> None:
    result = await gql.execute("{ products { nodes { name } } }", as_=None)
    assert result.data is None
    assert result.errors[0].extensions["code"] == "UNAUTHENTICATED"
    assert "bearer token" in result.errors[0].message


async def test_bad_signature_is_unauthenticated(gql: GraphQLClient) -> None:
    result = await gql.execute("{ products { nodes { name } } }", token="abc.def.ghi", as_=None)
    assert result.errors[0].extensions["code"] == "UNAUTHENTICATED"


async def test_unknown_supplier_is_unauthenticated(gql: GraphQLClient) -> None:
    result = await gql.execute("{ products { nodes { name } } }", as_=("nobody", "seller"))
    assert result.errors[0].extensions["code"] == "UNAUTHENTICATED"
    assert "unknown supplier" in result.errors[0].message


async def test_role_not_registered_for_supplier_is_forbidden(gql: GraphQLClient) -> None:
    result = await gql.execute("{ products { nodes { name } } }", as_=("demo-shop", "licensor"))
    assert result.errors[0].extensions["code"] == "FORBIDDEN"
    assert result.errors[0].extensions["statusCode"] == 3


async def test_missing_scope_is_forbidden_with_status_code_3(gql: GraphQLClient) -> None:
    result = await gql.execute(
        '{ pupil(eckId: "x") { __typename } }', as_=("demo-dashboard", "dashboard")
    )
    assert result.errors[0].extensions["code"] == "FORBIDDEN"
    assert "scope required" in result.errors[0].message


async def test_introspection_needs_a_token(gql: GraphQLClient) -> None:
    # Both settings: tests/api/test_hostile_queries.py (KETENPOORT_INTROSPECTION_NEEDS_TOKEN).
    refused = await gql.execute("{ __schema { queryType { name } } }", as_=None)
    assert refused.errors[0].extensions["code"] == "UNAUTHENTICATED"
    result = await gql.execute("{ __schema { queryType { name } } }")
    assert result.errors is None
    assert result.data == {"__schema": {"queryType": {"name": "Query"}}}
