"""Root fields whose typed answers compile: each case answered compiled (no
fallback) and, through the test client, equal to the resolvers' answer (the
oracle of tests/conftest.py compares every operation on PostgreSQL)."""

from __future__ import annotations

import json
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


DELIVERY = """query ($id: ID, $referenceId: String) {
  delivery(id: $id, referenceId: $referenceId) {
    __typename id referenceId orderNumber createdAt
    seller { code } school { rioId name }
    totals {
      entitlements entitled provisioned linkReady cancelled blocked ended failed
      licensed expired quantity
    }
    entitlements { id status quantity licencesUsed school { rioId } product { productId } }
  }
}"""


async def _answered_compiled_as(
    session: Any, code: str, role: str, query: str, variables: dict[str, Any]
) -> Any:
    caller = await _principal(session, code, role)
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(query), None, caller, variables)
    assert not isinstance(plan, Fallback), plan
    answer = await plan.execute(await raw_connection(session), variables, caller, today())
    assert isinstance(answer, CompiledAnswer), answer
    return json.loads(answer.data)


async def test_delivery_compiles_for_every_caller_and_lookup(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    from sqlalchemy import select

    from db.models import Delivery, Supplier

    rows = (
        await session.execute(
            select(Delivery.id, Delivery.reference_id, Supplier.code)
            .join(Supplier, Supplier.id == Delivery.seller_id)
            .order_by(Delivery.id)
        )
    ).all()
    sellers = {code for _, _, code in rows}
    assert len(sellers) >= 2  # the demo has deliveries of two shops
    pk, reference, seller = rows[0]
    other = next(code for code in sellers if code != seller)
    cases = [
        ((seller, "seller"), {"id": str(pk)}, True),
        ((seller, "seller"), {"referenceId": reference}, True),
        (("operator", "operator"), {"id": str(pk)}, True),
        (("operator", "operator"), {"referenceId": reference}, False),  # not its own
        ((other, "seller"), {"id": str(pk)}, False),
        ((other, "seller"), {"referenceId": reference}, False),
        ((seller, "seller"), {"id": "999999"}, False),
        ((seller, "seller"), {"id": "not a number"}, False),
    ]
    for (code, role), variables, found in cases:
        role_name = "seller" if role == "seller" else "operator"
        answer = await _answered_compiled_as(session, code, role_name, DELIVERY, variables)
        assert (answer["delivery"] is not None) == found, (code, variables, answer)
        # The resolvers' answer, compared with the compiled one by the test client.
        data = await gql.data(DELIVERY, variables, as_=(code, role))
        assert (data["delivery"] is not None) == found
    some = await _answered_compiled_as(session, seller, "seller", DELIVERY, {"id": str(pk)})
    assert some["delivery"]["entitlements"]
    assert some["delivery"]["totals"]["entitlements"] == len(some["delivery"]["entitlements"])


TRAIL = """query ($school: OrganisationIdentifierInput!, $first: Int, $after: String,
                 $since: DateTime, $until: DateTime) {
  auditTrail(school: $school, first: $first, after: $after, since: $since, until: $until) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { at role action objectType objectId detail supplier { code } } }
  }
}"""


async def test_audit_trail_compiles_for_the_operator_and_the_own_school(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    from datetime import UTC, datetime, timedelta

    # Reads of the school's data leave rows in its trail (written when a request ends).
    for _ in range(3):
        await gql.data(
            '{ entitlements(first: 5, filter: {school: {value: "104A158"}}) { nodes { id } } }'
        )
    school = {"value": "104A158"}
    now = datetime.now(UTC)
    cases: list[tuple[tuple[str, ...], dict[str, Any], str | None]] = [
        (("operator", "operator"), {"school": school, "first": 2}, None),
        (
            ("operator", "operator"),
            {"school": school, "since": (now - timedelta(days=1)).isoformat()},
            None,
        ),
        (
            ("operator", "operator"),
            {"school": school, "until": (now - timedelta(days=3650)).isoformat()},
            None,
        ),
        (("demo-school-admin", "school"), {"school": school}, "104A158"),
    ]
    first_page = None
    for as_, variables, admin_of in cases:
        caller = await _principal(session, as_[0], as_[1])
        if admin_of is not None:
            from dataclasses import replace

            from sqlalchemy import select

            from db.models import Organisation

            own = await session.scalar(
                select(Organisation.id).where(Organisation.rio_id == admin_of)
            )
            caller = replace(caller, school_id=own)
        plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(TRAIL), None, caller, variables)
        assert not isinstance(plan, Fallback), plan
        answer = await plan.execute(await raw_connection(session), variables, caller, today())
        assert isinstance(answer, CompiledAnswer), answer
        data = await gql.data(TRAIL, variables, as_=as_, school=admin_of)  # compared
        if variables.get("first") == 2:
            first_page = data
    assert first_page is not None
    assert first_page["auditTrail"]["totalCount"] >= 3
    assert first_page["auditTrail"]["pageInfo"]["hasNextPage"]
    after = first_page["auditTrail"]["pageInfo"]["endCursor"]
    await gql.data(TRAIL, {"school": school, "first": 2, "after": after})  # the next page


async def test_another_schools_trail_runs_on_the_resolvers(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    result = await gql.execute(
        TRAIL,
        {"school": {"value": "104A160"}},
        as_=("demo-school-admin", "school"),
        school="104A158",
    )
    assert result.errors  # refused by the resolvers (the compiled plan hands it over)


SCHOOL_FIGURES = """query ($school: OrganisationIdentifierInput!) {
  dashboard(school: $school) {
    schools { rioId }
    excludedSchools { school { rioId } missing reason }
    entitlementsByStatus { status entitlements openEntitlements quantity }
  }
}"""
WITH_LICENCES = SCHOOL_FIGURES.replace(
    "entitlementsByStatus {",
    "licenceTotals { quantityBought licencesActivated } entitlementsByStatus {",
)


async def _dashboard_compiled(
    session: Any, as_: tuple[str, str], query: str, school: str, admin_of: str | None = None
) -> Any:
    """The compiled answer (a Fallback when the resolvers must answer)."""
    from dataclasses import replace

    from sqlalchemy import select

    from db.models import Organisation

    caller = await _principal(session, *as_)
    if admin_of is not None:
        own = await session.scalar(select(Organisation.id).where(Organisation.rio_id == admin_of))
        caller = replace(caller, school_id=own)
    variables = {"school": {"value": school}}
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(query), None, caller, variables)
    assert not isinstance(plan, Fallback), plan
    return await plan.execute(await raw_connection(session), variables, caller, today())


async def test_a_named_schools_dashboard_compiles_with_its_refusals(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    from sqlalchemy import func, select, update

    from db.models import DataExchange, Organisation, Supplier

    school = "104A158"

    async def both_ways(
        as_: tuple[str, str], query: str, admin_of: str | None = None
    ) -> tuple[Any, Any]:
        answer = await _dashboard_compiled(session, as_, query, school, admin_of)
        result = await gql.execute(query, {"school": {"value": school}}, as_=as_, school=admin_of)
        return answer, result  # the test client compared the two

    for as_, admin_of in (
        (("operator", "operator"), None),
        (("demo-dashboard", "dashboard"), None),
        (("demo-school-admin", "school"), school),
    ):
        answer, result = await both_ways(as_, WITH_LICENCES, admin_of)
        assert isinstance(answer, CompiledAnswer), (as_, answer)
        assert not answer.errors
        assert result.data["dashboard"]["schools"] == [{"rioId": school}]
    # A school administrator of another school: FORBIDDEN, answered compiled.
    answer = await _dashboard_compiled(
        session, ("demo-school-admin", "school"), SCHOOL_FIGURES, school, admin_of="104A160"
    )
    assert isinstance(answer, CompiledAnswer)
    assert answer.data == "null"
    assert [e["extensions"]["code"] for e in answer.errors] == ["FORBIDDEN"]
    await gql.execute(
        SCHOOL_FIGURES,
        {"school": {"value": school}},
        as_=("demo-school-admin", "school"),
        school="104A160",
    )

    async def revoke(data_type: str) -> None:
        supplier = select(Supplier.id).where(Supplier.code == "demo-dashboard").scalar_subquery()
        at_school = select(Organisation.id).where(Organisation.rio_id == school).scalar_subquery()
        await session.execute(
            update(DataExchange)
            .where(
                DataExchange.supplier_id == supplier,
                DataExchange.school_id == at_school,
                DataExchange.data_type == data_type,
                DataExchange.revoked_at.is_(None),
            )
            .values(revoked_at=func.now())
        )
        await session.commit()  # into the test's outer transaction (rolled back at its end)

    dashboard = ("demo-dashboard", "dashboard")
    await revoke("ACTIVATIONS")
    # Entitlement figures only: compiled, the school listed as left out of licence figures.
    answer, result = await both_ways(dashboard, SCHOOL_FIGURES)
    assert isinstance(answer, CompiledAnswer)
    assert result.data["dashboard"]["excludedSchools"][0]["missing"] == ["ACTIVATIONS"]
    # Licence figures asked: refused at their own paths, compiled (a mark in the JSON).
    answer, result = await both_ways(dashboard, WITH_LICENCES)
    assert isinstance(answer, CompiledAnswer)
    assert [(e["path"], e["extensions"]["code"]) for e in answer.errors] == [
        (["dashboard", "licenceTotals"], "CONSENT_REQUIRED")
    ]
    assert "104A158" in answer.errors[0]["message"]
    assert json.loads(answer.data)["dashboard"]["licenceTotals"] is None
    assert result.data["dashboard"]["entitlementsByStatus"]  # the entitlement figures shown
    await revoke("ENTITLEMENTS")
    answer, result = await both_ways(dashboard, SCHOOL_FIGURES)
    assert isinstance(answer, CompiledAnswer)
    assert answer.data == "null"
    assert [e["extensions"]["code"] for e in answer.errors] == ["CONSENT_REQUIRED"]
    assert [e.extensions["code"] for e in result.errors] == ["CONSENT_REQUIRED"]


SHOP_FIGURES = """query ($from: Date, $until: Date) {
  dashboard(fromDate: $from, untilDate: $until) {
    fromDate untilDate schools { rioId } excludedSchools { missing }
    entitlementsByStatus { status entitlements openEntitlements quantity }
    licenceTotals { entitlements quantityBought licencesActivated activationRate }
    activationsPerDay { day activations cumulative activationRate }
  }
}"""


@pytest.mark.parametrize(
    ("code", "roles"), [("demo-shop", ("seller",)), ("demo-combined", ("seller", "licensor"))]
)
@pytest.mark.parametrize("ranged", [False, True])
async def test_a_shops_own_dashboard_compiles(
    postgres_only: None,
    session: Any,
    gql: GraphQLClient,
    code: str,
    roles: tuple[str, ...],
    ranged: bool,
) -> None:
    from datetime import timedelta

    from domain.roles import Role
    from resolvers.auth import Principal

    base = await _principal(session, code, roles[0])
    caller = Principal(
        base.supplier_id, frozenset(Role(r) for r in roles), None, supplier_code=code
    )
    day = today()
    variables = (
        {"from": str(day - timedelta(days=300)), "until": str(day)}
        if ranged
        else {"from": None, "until": None}
    )
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(SHOP_FIGURES), None, caller, variables)
    assert not isinstance(plan, Fallback), plan
    answer = await plan.execute(await raw_connection(session), variables, caller, day)
    assert isinstance(answer, CompiledAnswer), answer
    data = await gql.data(SHOP_FIGURES, variables, as_=(code, *roles))  # compared
    assert data["dashboard"]["entitlementsByStatus"]  # the shop's own deliveries counted
