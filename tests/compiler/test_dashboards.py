"""Dashboards compile (issue 14) for every caller of the dashboard's permission
matrix (the operator, a dashboard provider, a school administrator, a shop, a shop
that is also a licence office) and every consent state (the board of
tests/api/test_dashboard.py: school A with ENTITLEMENTS and ACTIVATIONS, B with
ENTITLEMENTS only, C with none): a named school or board, nothing named, and the
`productId` and `shopCode` filters, with every figure (failures too). Each case is
answered compiled in one statement, and the test client compares it with the
resolvers' answer (data, errors with their paths)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from graphql import parse
from sqlalchemy import select

from compiler import CompiledAnswer, Fallback, ReadCompiler
from db.models import Organisation, SchoolPeriod, Supplier, SupplierSchool
from domain.roles import Role
from resolvers.auth import Principal
from resolvers.clock import today
from tests.api.test_dashboard import Board
from tests.api.test_dashboard import board as dashboard_board  # noqa: F401 (a fixture)
from tests.compiler.oracle import raw_connection
from tests.compiler.test_statements import Counting
from tests.conftest import _SCHEMA, TEST_SETTINGS, GraphQLClient

FIGURES = """query ($board: OrganisationIdentifierInput, $school: OrganisationIdentifierInput,
    $shop: String, $product: String) {
  dashboard(board: $board, school: $school, shopCode: $shop, productId: $product) {
    schools { rioId }
    excludedSchools { school { rioId } missing reason }
    entitlementsByStatus { status entitlements openEntitlements quantity }
    licenceTotals { entitlements quantityBought licencesActivated activationRate }
    activationsPerDay { day activations cumulative activationRate }
    failures { code meaning recipientRole recipient { code } entitlements lastReportedAt }
  }
}"""

#: The callers of the matrix: (supplier code or None for the board's dashboard,
#: roles, administrator of the board's school B).
CALLERS = {
    "operator": ("operator", ("operator",), False),
    "dashboard": (None, ("dashboard",), False),
    "school": ("demo-school-admin", ("school",), True),
    "shop": ("demo-shop", ("seller",), False),
    "combined": ("demo-combined", ("seller", "licensor"), False),
}


@pytest.fixture
async def board(session: Any, dashboard_board: Board) -> Board:  # noqa: F811
    """The board, with demo-school-admin registered for its school B."""
    admin = await session.scalar(select(Supplier.id).where(Supplier.code == "demo-school-admin"))
    school = await session.scalar(
        select(Organisation.id).where(Organisation.rio_id == dashboard_board.b)
    )
    session.add(SupplierSchool(supplier_id=admin, organisation_id=school))
    await session.commit()
    return dashboard_board


async def both_ways(
    session: Any,
    gql: GraphQLClient,
    board: Board,
    who: str,
    variables: dict[str, Any],
    query: str = FIGURES,
) -> tuple[CompiledAnswer, Any]:
    """The compiled answer (asserted compiled, in one statement) and the resolvers'
    result, which the test client compared with it."""
    code, roles, admin = CALLERS[who]
    code = code or board.dashboard
    pk = await session.scalar(select(Supplier.id).where(Supplier.code == code))
    own = (
        await session.scalar(select(Organisation.id).where(Organisation.rio_id == board.b))
        if admin
        else None
    )
    caller = replace(
        Principal(pk, frozenset(Role(r) for r in roles), supplier_code=code), school_id=own
    )
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(query), None, caller, variables)
    assert not isinstance(plan, Fallback), (who, variables, plan)
    connection = Counting(await raw_connection(session))
    answer = await plan.execute(connection, variables, caller, today())
    assert isinstance(answer, CompiledAnswer), (who, variables, answer)
    assert len(connection.statements) == 1
    result = await gql.execute(
        query, variables, as_=(code, *roles), school=board.b if admin else None
    )
    return answer, result


def _codes(answer: CompiledAnswer) -> list[tuple[Any, str]]:
    return sorted((e["path"], e["extensions"]["code"]) for e in answer.errors)


@pytest.mark.parametrize("who", list(CALLERS))
async def test_a_named_school_in_every_consent_state_compiles(
    postgres_only: None, session: Any, gql: GraphQLClient, board: Board, who: str
) -> None:
    for school in (board.a, board.b, board.c):
        answer, _result = await both_ways(session, gql, board, who, {"school": board.ref(school)})
        if who == "dashboard" and school == board.b:
            # ENTITLEMENTS only: the licence figures refused at their own paths.
            assert _codes(answer) == [
                (["dashboard", "activationsPerDay"], "CONSENT_REQUIRED"),
                (["dashboard", "licenceTotals"], "CONSENT_REQUIRED"),
            ]
            data = json.loads(answer.data)["dashboard"]
            assert data["entitlementsByStatus"]
            assert data["excludedSchools"][0]["missing"] == ["ACTIVATIONS"]
        elif (who == "dashboard" and school == board.c) or (who == "school" and school != board.b):
            assert answer.data == "null"
            assert len(answer.errors) == 1
        else:
            assert not answer.errors, (who, school, answer.errors)


@pytest.mark.parametrize("who", list(CALLERS))
async def test_a_board_and_nothing_named_compile(
    postgres_only: None, session: Any, gql: GraphQLClient, board: Board, who: str
) -> None:
    answer, result = await both_ways(session, gql, board, who, {"board": board.ref()})
    assert not answer.errors
    codes = [f["code"] for f in result.data["dashboard"]["failures"]]
    # The shop that is also a licence office: its own delivery (3); the administrator
    # of B: its school's (11); the others see several schools' failures.
    expected = {"combined": [3], "school": [11]}
    assert codes == expected[who] if who in expected else len(codes) > 1, codes
    excluded = result.data["dashboard"]["excludedSchools"]
    assert bool(excluded) == (who in ("dashboard", "school"))
    answer, _result = await both_ways(session, gql, board, who, {})
    assert not answer.errors


@pytest.mark.parametrize("who", list(CALLERS))
async def test_product_and_shop_filters_compile(
    postgres_only: None, session: Any, gql: GraphQLClient, board: Board, who: str
) -> None:
    for variables in (
        {"board": board.ref(), "product": board.p1},
        {"school": board.ref(board.a), "product": board.p3},
        {"product": board.p1},
        {"board": board.ref(), "shop": "demo-combined"},
        {"shop": "demo-shop", "product": board.p1},
    ):
        answer, result = await both_ways(session, gql, board, who, variables)
        if who == "shop" and variables.get("shop") == "demo-combined":
            # A shop sees its own deliveries only: FORBIDDEN, from the resolvers' rule.
            assert _codes(answer) == [(["dashboard"], "FORBIDDEN")]
        elif who == "combined" and variables.get("shop") == "demo-shop":
            assert _codes(answer) == [(["dashboard"], "FORBIDDEN")]
        elif who == "school" and variables.get("school"):
            assert _codes(answer) == [(["dashboard"], "FORBIDDEN")]  # not its school
        else:
            assert not answer.errors, (who, variables, answer.errors)


async def test_an_unknown_product_or_shop_runs_on_the_resolvers(
    postgres_only: None, session: Any, gql: GraphQLClient, board: Board
) -> None:
    pk = await session.scalar(select(Supplier.id).where(Supplier.code == board.dashboard))
    caller = Principal(pk, frozenset({Role.DASHBOARD}), supplier_code=board.dashboard)
    for variables in ({"shop": "no-such-shop"}, {"product": "9789999999991"}):
        plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(FIGURES), None, caller, variables)
        assert not isinstance(plan, Fallback)
        answer = await plan.execute(await raw_connection(session), variables, caller, today())
        assert isinstance(answer, Fallback)  # the resolvers' BadInput
        result = await gql.execute(FIGURES, variables, as_=(board.dashboard, "dashboard"))
        assert [e.extensions["code"] for e in result.errors] == ["BAD_USER_INPUT"]


STUCK = """query ($board: OrganisationIdentifierInput, $school: OrganisationIdentifierInput) {
  dashboard(board: $board, school: $school) {
    hour: stuckDeliveries(pendingLongerThanMinutes: 60) {
      total
      deliveries { deliveryId orderNumber submittedAt entitlements pendingAtLicensor
                   pendingAtPortal pendingSince shop { code } school { rioId } }
    }
    recent: stuckDeliveries(pendingLongerThanMinutes: 5, first: 1) {
      total deliveries { deliveryId }
    }
    none: stuckDeliveries(pendingLongerThanMinutes: 7200) { total deliveries { deliveryId } }
  }
}"""


#: The same with every argument a variable: one plan for every value, each request's
#: values checked and used when it runs.
STUCK_VARIABLES = (
    STUCK.replace(
        "query ($board", "query ($hour: Int!, $recent: Int!, $first: Int!, $none: Int!, $board"
    )
    .replace("(pendingLongerThanMinutes: 60)", "(pendingLongerThanMinutes: $hour)")
    .replace(
        "(pendingLongerThanMinutes: 5, first: 1)",
        "(pendingLongerThanMinutes: $recent, first: $first)",
    )
    .replace("(pendingLongerThanMinutes: 7200)", "(pendingLongerThanMinutes: $none)")
)
GIVEN = {"hour": 60, "recent": 5, "first": 1, "none": 7200}


@pytest.fixture
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """One moment for both paths: "pending longer than N minutes" counts back from it."""
    from resolvers import clock

    moment = clock.utc_now()
    monkeypatch.setattr(clock, "utc_now", lambda: moment)
    return moment


@pytest.mark.parametrize("who", list(CALLERS))
async def test_stuck_deliveries_compile(
    postgres_only: None,
    pinned_clock: datetime,
    session: Any,
    gql: GraphQLClient,
    board: Board,
    who: str,
) -> None:
    cases = [
        (query, {**given, **where})
        for query, given in ((STUCK, {}), (STUCK_VARIABLES, GIVEN))
        for where in ({"board": board.ref()}, {"school": board.ref(board.a)}, {})
    ]
    for query, variables in cases:
        answer, result = await both_ways(session, gql, board, who, variables, query)
        if who == "school" and "school" in variables:
            assert answer.data == "null"  # school A is not its school
            continue
        assert not answer.errors, (who, variables, answer.errors)
        data = result.data["dashboard"]
        assert data["none"] == {"total": 0, "deliveries": []}
        # Entitlement 4's delivery waits longer than an hour, 8's portal ten minutes
        # (tests/api/test_dashboard.py); the administrator of B and the shop that is
        # also a licence office see none that wait an hour.
        hour, recent = data["hour"]["total"], data["recent"]["total"]
        assert (hour == 0) == (who in ("school", "combined")), (who, variables, data)
        assert recent >= hour
        assert len(data["recent"]["deliveries"]) == min(recent, 1)
        assert len(data["hour"]["deliveries"]) == hour


async def test_stuck_deliveries_out_of_bounds_run_on_the_resolvers(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    """Literals out of bounds never compile; variables out of bounds compile into the
    plan every value shares, and the request with them goes to the resolvers, which
    refuse it at the field."""
    caller = Principal(1, frozenset({Role.OPERATOR}), supplier_code="operator")
    compiler = ReadCompiler(_SCHEMA, TEST_SETTINGS)
    for query in (
        "{ dashboard { stuckDeliveries(pendingLongerThanMinutes: 0) { total } } }",
        "{ dashboard { stuckDeliveries(pendingLongerThanMinutes: 5, first: 101) { total } } }",
    ):
        assert isinstance(compiler.plan(parse(query), None, caller, {}), Fallback)
    varied = (
        "query ($m: Int!, $n: Int!) { dashboard { "
        "stuckDeliveries(pendingLongerThanMinutes: $m, first: $n) { total } } }"
    )
    connection = await raw_connection(session)
    for variables, compiled in (
        ({"m": 60, "n": 5}, True),
        ({"m": 0, "n": 5}, False),
        ({"m": 60, "n": 101}, False),
    ):
        plan = compiler.plan(parse(varied), None, caller, variables)
        assert not isinstance(plan, Fallback)
        answer = await plan.execute(connection, variables, caller, today())
        assert isinstance(answer, CompiledAnswer) is compiled, (variables, answer)
        result = await gql.execute(varied, variables)
        if not compiled:
            assert [e.extensions["code"] for e in result.errors] == ["BAD_USER_INPUT"]
    # A nullable variable for `first` (Int! with a default) given null: graphql-core
    # refuses it at the field; the compiled plan hands the request to the resolvers
    # instead of failing (which would log an unexpected error on every such request).
    nullable = varied.replace("$n: Int!", "$n: Int")
    plan = compiler.plan(parse(nullable), None, caller, {"m": 60, "n": None})
    assert not isinstance(plan, Fallback)
    answer = await plan.execute(connection, {"m": 60, "n": None}, caller, today())
    assert isinstance(answer, Fallback)
    assert "stuckDeliveries arguments" in answer.reason


PERIOD = FIGURES.replace("$product: String)", "$product: String, $period: String)").replace(
    "productId: $product)", "productId: $product, schoolPeriod: $period)"
).replace("schools { rioId }", "fromDate untilDate schools { rioId }")


@pytest.mark.parametrize("who", list(CALLERS))
async def test_a_school_period_compiles(
    postgres_only: None, session: Any, gql: GraphQLClient, board: Board, who: str
) -> None:
    b = await session.scalar(select(Organisation.id).where(Organisation.rio_id == board.b))
    day = today()
    session.add(
        SchoolPeriod(
            school_id=b,
            code=board.period,
            start_date=day - timedelta(days=10),
            end_date=day + timedelta(days=10),
        )
    )
    await session.commit()
    seen = {}
    for name, variables in (
        ("board", {"board": board.ref()}),
        ("a", {"school": board.ref(board.a)}),
        ("b", {"school": board.ref(board.b)}),
    ):
        answer, result = await both_ways(
            session, gql, board, who, {**variables, "period": board.period}, PERIOD
        )
        seen[name] = result.data and result.data["dashboard"]
    # The board's period runs from A's start to A's end (B's lies within it).
    assert seen["board"]["fromDate"] == (day - timedelta(days=25)).isoformat()
    assert seen["board"]["untilDate"] == (day + timedelta(days=100)).isoformat()
    if seen["b"] is not None:
        assert seen["b"]["fromDate"] == (day - timedelta(days=10)).isoformat()
    if who == "school":
        # Nothing named: the administrator's own school's period.
        answer, result = await both_ways(session, gql, board, who, {"period": board.period}, PERIOD)
        assert result.data["dashboard"]["untilDate"] == (day + timedelta(days=10)).isoformat()


async def test_a_school_period_the_resolvers_refuse_runs_on_them(
    postgres_only: None, session: Any, gql: GraphQLClient, board: Board
) -> None:
    pk = await session.scalar(select(Supplier.id).where(Supplier.code == board.dashboard))
    caller = Principal(pk, frozenset({Role.DASHBOARD}), supplier_code=board.dashboard)
    compiler = ReadCompiler(_SCHEMA, TEST_SETTINGS)
    nothing_named = compiler.plan(parse(PERIOD), None, caller, {"period": board.period})
    assert isinstance(nothing_named, Fallback)  # "schoolPeriod needs a school or a board"
    for variables in (
        {"school": board.ref(board.b), "period": board.period},  # not at B
        {"board": board.ref(), "period": "no-such-period"},
    ):
        plan = compiler.plan(parse(PERIOD), None, caller, variables)
        assert not isinstance(plan, Fallback)
        answer = await plan.execute(await raw_connection(session), variables, caller, today())
        assert isinstance(answer, Fallback)  # the resolvers' BadInput
        result = await gql.execute(PERIOD, variables, as_=(board.dashboard, "dashboard"))
        assert [e.extensions["code"] for e in result.errors] == ["BAD_USER_INPUT"]
