"""Dashboards (seed 004: one overview across shops) on SQLite and PostgreSQL, against
hand-counted fixtures: a new board with three new schools, one with full consent
for a new dashboard provider, one with ENTITLEMENTS only, one with none; nine
entitlements in every status at two shops, their licences on known days, failures
and deliveries waiting for an answer. Every expected number below is counted by
hand from the table in `board`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.dashboard import compact, day_of
from db.demo import ean13
from db.models import (
    DataExchange,
    Delivery,
    Entitlement,
    EntitlementRecipient,
    EntitlementSummary,
    Licence,
    LicenceDaySummary,
    Organisation,
    OrganisationRelation,
    Person,
    ProcessingAgreement,
    Product,
    SchoolDaySummary,
    SchoolPeriod,
    SchoolSummary,
    Supplier,
    SupplierRole,
    SupplierSchool,
)
from resolvers.clock import AMSTERDAM, today
from tests.conftest import GraphQLClient

SUMMARY = """query ($board: OrganisationIdentifierInput, $school: OrganisationIdentifierInput,
    $shop: String, $product: String, $period: String, $from: Date, $until: Date) {
  dashboard(board: $board, school: $school, shopCode: $shop, productId: $product,
            schoolPeriod: $period, fromDate: $from, untilDate: $until) {
    fromDate untilDate
    schools { rioId }
    excludedSchools { school { rioId } missing reason }
    entitlementsByStatus { status entitlements openEntitlements quantity }
  }
}"""

LICENCES = """query ($board: OrganisationIdentifierInput, $school: OrganisationIdentifierInput,
    $from: Date, $until: Date) {
  dashboard(board: $board, school: $school, fromDate: $from, untilDate: $until) {
    licenceTotals { entitlements openEntitlements quantityBought licencesActivated
                    licencesActivatedOpen activationRate }
    activationsPerDay { day activations cumulative activationRate }
  }
}"""

PROBLEMS = """query ($board: OrganisationIdentifierInput, $minutes: Int!) {
  dashboard(board: $board) {
    failures { code meaning recipientRole recipient { code } entitlements lastReportedAt }
    stuckDeliveries(pendingLongerThanMinutes: $minutes) {
      total
      deliveries { orderNumber entitlements pendingAtLicensor pendingAtPortal
                   shop { code } school { rioId } }
    }
  }
}"""


@dataclass
class Board:
    rio: str
    a: str
    b: str
    c: str
    dashboard: str
    period: str
    p1: str
    p3: str

    def ref(self, rio: str | None = None) -> dict[str, str]:
        return {"value": rio or self.rio}


def _at(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=AMSTERDAM)


async def _id(session: AsyncSession, model: Any, **where: Any) -> int:
    found = await session.scalar(
        select(model.id).where(*(getattr(model, k) == v for k, v in where.items()))
    )
    assert found is not None, where
    return int(found)


@pytest.fixture
async def board(session: AsyncSession) -> Board:
    tag = secrets.token_hex(2).upper()
    serial = int(tag, 16) % 900 + 100
    rio = f"{serial}B{serial}"
    board_row = Organisation(level="BOARD", rio_id=rio, name=f"Bestuur {tag}")
    schools = [
        Organisation(level="PROVIDER", rio_id=f"{serial}A{n}{serial % 100:02d}", name=f"{n} {tag}")
        for n in (1, 2, 3)
    ]
    session.add_all([board_row, *schools])
    await session.flush()
    session.add_all(OrganisationRelation(parent_id=board_row.id, child_id=s.id) for s in schools)
    a, b, c = schools
    dashboard = Supplier(code=f"dash-{tag.lower()}", name="Test dashboard")
    session.add(dashboard)
    await session.flush()
    session.add(SupplierRole(supplier_id=dashboard.id, role="dashboard"))
    day = today()
    for school, data_types in ((a, ["ENTITLEMENTS", "ACTIVATIONS"]), (b, ["ENTITLEMENTS"])):
        for data_type in data_types:
            session.add(
                DataExchange(
                    school_id=school.id,
                    supplier_id=dashboard.id,
                    role="dashboard",
                    data_type=data_type,
                    activated_by="test",
                )
            )
        session.add(
            ProcessingAgreement(
                school_id=school.id, supplier_id=dashboard.id, valid_from=day - timedelta(days=90)
            )
        )
    # C activated the exchange once but revoked it: no consent.
    session.add(
        DataExchange(
            school_id=c.id,
            supplier_id=dashboard.id,
            role="dashboard",
            data_type="ENTITLEMENTS",
            revoked_at=datetime.now(UTC),
        )
    )
    period = f"P-{tag}"
    session.add(
        SchoolPeriod(
            school_id=a.id,
            code=period,
            start_date=day - timedelta(days=25),
            end_date=day + timedelta(days=100),
        )
    )

    shop = await _id(session, Supplier, code="demo-shop")
    combined = await _id(session, Supplier, code="demo-combined")
    publisher = await _id(session, Supplier, code="demo-publisher")
    portal = await _id(session, Supplier, code="demo-portal")
    lms = await _id(session, Supplier, code="demo-lms")
    p1 = await _id(session, Product, code=ean13(1))
    p2 = await _id(session, Product, code=ean13(2))
    p3 = await _id(session, Product, code=ean13(9))  # Taal actief, demo-combined's

    deliveries = {}
    for name, seller, school in (
        ("D1", shop, a),
        ("D2", combined, a),
        ("D3", shop, b),
        ("D4", shop, c),
    ):
        row = Delivery(
            seller_id=seller,
            reference_id=f"dash-{tag}-{name}",
            request_hash="test",
            buyer_school_id=school.id,
            order_number=f"{name}-{tag}",
        )
        session.add(row)
        deliveries[name] = row
    await session.flush()

    pupils = [Person(kind="PUPIL", sector="vo") for _ in range(8)]
    session.add_all(pupils)
    await session.flush()

    active = (day - timedelta(days=60), day + timedelta(days=200))
    ended = (day - timedelta(days=400), day - timedelta(days=10))
    long_ago = datetime.now(UTC) - timedelta(days=3)
    a_while_ago = datetime.now(UTC) - timedelta(minutes=10)
    # (delivery, school, product, variant, quantity, status, period, licence days,
    #  recipients as (supplier, role, state, code, updated_at))
    table = [
        # 1: open, LINK_READY, 3 licences (two on day-20, one on day-19)
        ("D1", a, p1, "SCHOOL", 30, "LINK_READY", active, [20, 20, 19],
         [(publisher, "LICENSOR", "CONFIRMED", None, long_ago),
          (portal, "PORTAL", "CONFIRMED", None, long_ago),
          (dashboard.id, "DASHBOARD", "PENDING", None, long_ago)]),
        # 2: open, past its period: ENDED, 2 licences long ago
        ("D1", a, p1, "SCHOOL_GROUP", 20, "LINK_READY", ended, [100, 99],
         [(publisher, "LICENSOR", "CONFIRMED", None, long_ago)]),
        # 3: individual, PROVISIONED, the portal failed with code 7
        ("D1", a, p2, "SCHOOL_PUPIL", None, "PROVISIONED", active, [],
         [(publisher, "LICENSOR", "CONFIRMED", None, long_ago),
          (portal, "PORTAL", "FAILED", 7, long_ago)]),
        # 4: open, ENTITLED, nobody answered for three days: stuck
        ("D1", a, p2, "SCHOOL", 10, "ENTITLED", active, [],
         [(publisher, "LICENSOR", "PENDING", None, long_ago),
          (portal, "PORTAL", "PENDING", None, long_ago),
          (dashboard.id, "DASHBOARD", "PENDING", None, long_ago)]),
        # 5: open, CANCELLED after its period (stays CANCELLED), 1 licence
        ("D1", a, p1, "SCHOOL", 5, "CANCELLED", ended, [50],
         [(publisher, "LICENSOR", "CONFIRMED", None, long_ago)]),
        # 6: individual at the combined shop, BLOCKED, 1 licence; the LMS failed with 3
        ("D2", a, p3, "SCHOOL_PUPIL", None, "BLOCKED", active, [20],
         [(lms, "PORTAL", "FAILED", 3, long_ago)]),
        # 7: school B, open, LINK_READY, 4 licences
        ("D3", b, p1, "SCHOOL", 40, "LINK_READY", active, [20, 20, 20, 20],
         [(portal, "PORTAL", "CONFIRMED", None, long_ago)]),
        # 8: school B, open, ENTITLED; licence office failed 11, portal waits 10 minutes
        ("D3", b, p1, "SCHOOL", 8, "ENTITLED", active, [],
         [(publisher, "LICENSOR", "FAILED", 11, long_ago),
          (portal, "PORTAL", "PENDING", None, a_while_ago)]),
        # 9: school C (no consent), open, LINK_READY, 2 licences; the portal failed 99
        ("D4", c, p1, "SCHOOL", 100, "LINK_READY", active, [20, 20],
         [(portal, "PORTAL", "FAILED", 99, long_ago),
          (publisher, "LICENSOR", "PENDING", None, long_ago)]),
    ]  # fmt: skip
    for delivery, school, product, variant, quantity, status, (
        start,
        until,
    ), days, recipients in table:
        entitlement = Entitlement(
            delivery_id=deliveries[delivery].id,
            product_id=product,
            variant=variant,
            school_id=school.id,
            quantity=quantity,
            licences_used=len(days),
            start_date=start,
            activation_until_date=until,
            min_expiration_date=day + timedelta(days=300),
            status=status,
            status_before_block="LINK_READY" if status == "BLOCKED" else None,
        )
        session.add(entitlement)
        await session.flush()
        for supplier, role, state, code, updated in recipients:
            session.add(
                EntitlementRecipient(
                    entitlement_id=entitlement.id,
                    supplier_id=supplier,
                    role=role,
                    state=state,
                    failure_code=code,
                    updated_at=updated,
                )
            )
        for index, back in enumerate(days):
            session.add(
                Licence(
                    entitlement_id=entitlement.id,
                    person_id=pupils[index].id,
                    product_id=product,
                    school_id=school.id,
                    status="ACTIVATED",
                    activated_at=_at(day - timedelta(days=back)),
                    expiration_date=day + timedelta(days=300),
                )
            )
        await session.flush()
    await session.commit()
    return Board(rio, a.rio_id, b.rio_id, c.rio_id, dashboard.code, period, ean13(1), ean13(9))


def _by_status(data: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {
        row["status"]: (row["entitlements"], row["openEntitlements"], row["quantity"])
        for row in data["entitlementsByStatus"]
    }


def _error(result: Any) -> tuple[str, int | None]:
    assert result.errors, result.data
    extensions = result.errors[0].extensions
    return extensions["code"], extensions.get("statusCode")


# --- a board: consented schools counted, the others listed ----------------------------------


async def test_board_counts_consented_schools_and_lists_the_others(
    gql: GraphQLClient, board: Board
) -> None:
    data = (await gql.data(SUMMARY, {"board": board.ref()}, as_=(board.dashboard, "dashboard")))[
        "dashboard"
    ]
    assert sorted(s["rioId"] for s in data["schools"]) == sorted([board.a, board.b])
    excluded = {e["school"]["rioId"]: e["missing"] for e in data["excludedSchools"]}
    assert excluded == {board.b: ["ACTIVATIONS"], board.c: ["ENTITLEMENTS", "ACTIVATIONS"]}
    assert all("consent required" in e["reason"] for e in data["excludedSchools"])
    # Schools A and B: entitlements 1-8 (C's entitlement 9 is not counted).
    assert _by_status(data) == {
        "LINK_READY": (2, 2, 70),  # 1 and 7
        "ENDED": (1, 1, 20),  # 2
        "PROVISIONED": (1, 0, 0),  # 3
        "ENTITLED": (2, 2, 18),  # 4 and 8
        "CANCELLED": (1, 1, 5),  # 5 (ended, but cancelled stays cancelled)
        "BLOCKED": (1, 0, 0),  # 6
    }


async def test_licence_figures_need_the_activations_exchange(
    gql: GraphQLClient, board: Board
) -> None:
    day = today()
    data = (
        await gql.data(
            LICENCES,
            {
                "board": board.ref(),
                "from": (day - timedelta(days=30)).isoformat(),
                "until": day.isoformat(),
            },
            as_=(board.dashboard, "dashboard"),
        )
    )["dashboard"]
    # School A only (B has not activated ACTIVATIONS): entitlements 1-6.
    assert data["licenceTotals"] == {
        "entitlements": 6,
        "openEntitlements": 4,  # 1, 2, 4, 5
        "quantityBought": 65,  # 30 + 20 + 10 + 5
        "licencesActivated": 7,  # 3 + 2 + 1 + 1
        "licencesActivatedOpen": 6,  # 3 + 2 + 1
        "activationRate": pytest.approx(6 / 65),
    }
    # Before the range: 2 (entitlement 2) + 1 (entitlement 5), all open.
    assert data["activationsPerDay"] == [
        {
            "day": (day - timedelta(days=20)).isoformat(),
            "activations": 3,  # two on 1, one on 6
            "cumulative": 6,
            "activationRate": pytest.approx(5 / 65),
        },
        {
            "day": (day - timedelta(days=19)).isoformat(),
            "activations": 1,
            "cumulative": 7,
            "activationRate": pytest.approx(6 / 65),
        },
    ]


async def test_failures_per_code_and_recipient_and_stuck_deliveries(
    gql: GraphQLClient, board: Board
) -> None:
    data = (
        await gql.data(
            PROBLEMS, {"board": board.ref(), "minutes": 60}, as_=(board.dashboard, "dashboard")
        )
    )["dashboard"]
    failures = {
        (f["code"], f["meaning"], f["recipientRole"], f["recipient"]["code"]): f["entitlements"]
        for f in data["failures"]
    }
    # C's failure 99 is not counted.
    assert failures == {
        (7, "GROUP_UNKNOWN", "PORTAL", "demo-portal"): 1,
        (3, "PERSON_UNKNOWN", "PORTAL", "demo-lms"): 1,
        (11, "PRODUCT_UNKNOWN", "LICENSOR", "demo-publisher"): 1,
    }
    assert all(f["lastReportedAt"] for f in data["failures"])
    # Only entitlement 4 waits longer than an hour (8's portal for ten minutes;
    # dashboards never answer and never count).
    stuck = data["stuckDeliveries"]
    assert stuck["total"] == 1
    (delivery,) = stuck["deliveries"]
    assert delivery["orderNumber"].startswith("D1-")
    assert (delivery["entitlements"], delivery["pendingAtLicensor"]) == (1, 1)
    assert delivery["pendingAtPortal"] == 1
    assert (delivery["shop"]["code"], delivery["school"]["rioId"]) == ("demo-shop", board.a)
    # Five minutes catch entitlement 8's delivery too; five days catch nothing.
    recent = await gql.data(
        PROBLEMS, {"board": board.ref(), "minutes": 5}, as_=(board.dashboard, "dashboard")
    )
    assert recent["dashboard"]["stuckDeliveries"]["total"] == 2
    assert [d["orderNumber"][:2] for d in recent["dashboard"]["stuckDeliveries"]["deliveries"]] == [
        "D1",
        "D3",
    ]
    older = await gql.data(
        PROBLEMS, {"board": board.ref(), "minutes": 5 * 24 * 60}, as_=(board.dashboard, "dashboard")
    )
    assert older["dashboard"]["stuckDeliveries"] == {"total": 0, "deliveries": []}


async def test_without_a_name_a_dashboard_sees_every_school_that_activated_it(
    gql: GraphQLClient, board: Board
) -> None:
    data = (await gql.data(SUMMARY, {}, as_=(board.dashboard, "dashboard")))["dashboard"]
    assert sorted(s["rioId"] for s in data["schools"]) == sorted([board.a, board.b])
    assert data["excludedSchools"] == []
    assert sum(n for n, _open, _q in _by_status(data).values()) == 8


# --- one school ------------------------------------------------------------------------------


async def test_a_school_without_consent_is_refused(gql: GraphQLClient, board: Board) -> None:
    result = await gql.execute(
        SUMMARY, {"school": board.ref(board.c)}, as_=(board.dashboard, "dashboard")
    )
    assert _error(result) == ("CONSENT_REQUIRED", 4)
    assert board.c in result.errors[0].message
    assert result.data is None


async def test_a_school_without_activations_shows_entitlements_but_no_licences(
    gql: GraphQLClient, board: Board
) -> None:
    query = """query ($school: OrganisationIdentifierInput) { dashboard(school: $school) {
        entitlementsByStatus { status entitlements } licenceTotals { licencesActivated } } }"""
    result = await gql.execute(
        query, {"school": board.ref(board.b)}, as_=(board.dashboard, "dashboard")
    )
    assert _error(result) == ("CONSENT_REQUIRED", 4)
    assert result.errors[0].path == ["dashboard", "licenceTotals"]
    assert {
        r["status"]: r["entitlements"] for r in result.data["dashboard"]["entitlementsByStatus"]
    } == {
        "LINK_READY": 1,
        "ENTITLED": 1,
    }


async def test_school_administrator_sees_its_own_school_only(
    gql: GraphQLClient, board: Board, session: AsyncSession
) -> None:
    admin = await _id(session, Supplier, code="demo-school-admin")
    own_school = await _id(session, Organisation, rio_id=board.b)
    session.add(SupplierSchool(supplier_id=admin, organisation_id=own_school))
    await session.commit()
    own = await gql.execute(
        SUMMARY, {"school": board.ref(board.b)}, as_=("demo-school-admin", "school"), school=board.b
    )
    assert own.errors is None
    assert _by_status(own.data["dashboard"]) == {"LINK_READY": (1, 1, 40), "ENTITLED": (1, 1, 8)}
    implied = await gql.execute(SUMMARY, {}, as_=("demo-school-admin", "school"), school=board.b)
    assert _by_status(implied.data["dashboard"]) == _by_status(own.data["dashboard"])
    other = await gql.execute(
        SUMMARY, {"school": board.ref(board.a)}, as_=("demo-school-admin", "school"), school=board.b
    )
    assert _error(other) == ("FORBIDDEN", 3)
    # Of its board it sees itself; the others are listed as not its own.
    whole = await gql.data(
        SUMMARY, {"board": board.ref()}, as_=("demo-school-admin", "school"), school=board.b
    )
    reasons = {e["school"]["rioId"]: e["reason"] for e in whole["dashboard"]["excludedSchools"]}
    assert reasons == {board.a: "not your school", board.c: "not your school"}


async def test_shop_sees_its_own_deliveries_without_consent(
    gql: GraphQLClient, board: Board
) -> None:
    combined = await gql.data(SUMMARY, {"board": board.ref()}, as_=("demo-combined", "seller"))
    assert _by_status(combined["dashboard"]) == {"BLOCKED": (1, 0, 0)}  # 6
    assert combined["dashboard"]["excludedSchools"] == []
    # demo-shop: 1-5 and 7-9, school C included (its own data, no consent needed).
    shop = await gql.data(SUMMARY, {"board": board.ref()}, as_=("demo-shop", "seller"))
    assert _by_status(shop["dashboard"])["LINK_READY"] == (3, 3, 170)  # 1, 7 and 9
    other = await gql.execute(
        SUMMARY, {"board": board.ref(), "shop": "demo-shop"}, as_=("demo-combined", "seller")
    )
    assert _error(other) == ("FORBIDDEN", 3)


async def test_operator_sees_every_school(gql: GraphQLClient, board: Board) -> None:
    data = (await gql.data(SUMMARY, {"board": board.ref()}))["dashboard"]
    assert data["excludedSchools"] == []
    assert _by_status(data)["LINK_READY"] == (3, 3, 170)
    assert sum(n for n, _open, _q in _by_status(data).values()) == 9


async def test_filters_product_shop_and_school_period(gql: GraphQLClient, board: Board) -> None:
    as_ = (board.dashboard, "dashboard")
    by_product = await gql.data(SUMMARY, {"board": board.ref(), "product": board.p1}, as_=as_)
    # Product 1 at A and B: entitlements 1, 2, 5, 7, 8.
    assert _by_status(by_product["dashboard"]) == {
        "LINK_READY": (2, 2, 70),
        "ENDED": (1, 1, 20),
        "CANCELLED": (1, 1, 5),
        "ENTITLED": (1, 1, 8),
    }
    by_shop = await gql.data(SUMMARY, {"board": board.ref(), "shop": "demo-combined"}, as_=as_)
    assert _by_status(by_shop["dashboard"]) == {"BLOCKED": (1, 0, 0)}
    # The period (day-25 .. day+100) overlaps every activation period at A except the
    # ended ones (until day-10 ... which still overlaps): all of 1-6.
    period = await gql.data(
        SUMMARY, {"school": board.ref(board.a), "period": board.period}, as_=as_
    )
    assert period["dashboard"]["fromDate"] == (today() - timedelta(days=25)).isoformat()
    assert sum(n for n, _o, _q in _by_status(period["dashboard"]).values()) == 6
    # A range after the ended ones leaves them out.
    later = await gql.data(
        SUMMARY,
        {
            "school": board.ref(board.a),
            "from": (today() - timedelta(days=5)).isoformat(),
            "until": today().isoformat(),
        },
        as_=as_,
    )
    assert sum(n for n, _o, _q in _by_status(later["dashboard"]).values()) == 4


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"from": "2026-01-01", "until": "2027-01-02"}, "at most 366 days"),
        ({"from": "2026-01-01"}, "give both fromDate and untilDate"),
        ({"from": "2026-02-01", "until": "2026-01-01"}, "untilDate lies before fromDate"),
        ({"period": "2026-2027"}, "schoolPeriod needs a school or a board"),
        ({"product": "123"}, "productId"),
        ({"shop": "no-such-shop"}, "no supplier has code"),
    ],
)
async def test_bad_arguments_are_refused_clearly(
    gql: GraphQLClient, board: Board, variables: dict[str, Any], message: str
) -> None:
    result = await gql.execute(SUMMARY, variables, as_=(board.dashboard, "dashboard"))
    assert _error(result)[0] == "BAD_USER_INPUT"
    assert message in result.errors[0].message


async def test_a_full_year_is_allowed(gql: GraphQLClient, board: Board) -> None:
    data = await gql.data(
        SUMMARY,
        {"board": board.ref(), "from": "2026-01-01", "until": "2027-01-01"},
        as_=(board.dashboard, "dashboard"),
    )
    assert data["dashboard"]["untilDate"] == "2027-01-01"


# --- the summaries behind the figures ----------------------------------------------------------


async def _summary_drift(session: AsyncSession) -> tuple[list[Any], ...]:
    """Rows where the trigger-kept summaries (after folding the pending differences)
    differ from grouping the rows themselves, for each of the four summaries."""
    await compact(session)
    e, s, c = Entitlement, EntitlementSummary, SchoolSummary
    key = (e.school_id, e.product_id, Delivery.seller_id, e.status, e.start_date)
    key += (e.activation_until_date,)
    grouped = (
        select(
            *key, func.count(), func.sum(func.coalesce(e.quantity, 0)), func.sum(e.licences_used)
        )
        .join(Delivery, Delivery.id == e.delivery_id)
        .where(e.school_id.is_not(None))
        .group_by(*key)
    )
    direct = {tuple(row[:6]): tuple(row[6:]) for row in await session.execute(grouped)}
    fine_key = (s.school_id, s.product_id, s.seller_id, s.status, s.start_date)
    fine_key += (s.activation_until_date,)
    kept = {
        tuple(row[:6]): tuple(row[6:])
        for row in await session.execute(
            select(*fine_key, s.entitlements, s.quantity, s.licences_used).where(
                s.entitlements != 0
            )
        )
    }
    coarse_direct = {
        tuple(row[:3]): tuple(row[3:])
        for row in await session.execute(
            select(
                e.school_id,
                e.status,
                e.activation_until_date,
                func.count(),
                func.sum(e.licences_used),
            )
            .where(e.school_id.is_not(None))
            .group_by(e.school_id, e.status, e.activation_until_date)
        )
    }
    coarse_kept = {
        tuple(row[:3]): tuple(row[3:])
        for row in await session.execute(
            select(
                c.school_id, c.status, c.activation_until_date, c.entitlements, c.licences_used
            ).where(c.entitlements != 0)
        )
    }
    day = day_of(session, Licence.activated_at)
    days = {
        (school, str(when), product, seller): n
        for school, when, product, seller, n in await session.execute(
            select(Licence.school_id, day, Licence.product_id, Delivery.seller_id, func.count())
            .join(Entitlement, Entitlement.id == Licence.entitlement_id)
            .join(Delivery, Delivery.id == Entitlement.delivery_id)
            .where(Licence.school_id.is_not(None))
            .group_by(Licence.school_id, day, Licence.product_id, Delivery.seller_id)
        )
    }
    d, sd = LicenceDaySummary, SchoolDaySummary
    kept_days = {
        (school, str(when), product, seller): n
        for school, when, product, seller, n in await session.execute(
            select(d.school_id, d.day, d.product_id, d.seller_id, d.activations).where(
                d.activations != 0
            )
        )
    }
    school_days: dict[tuple[Any, str], int] = {}
    for (school, when, _product, _seller), n in days.items():
        school_days[(school, when)] = school_days.get((school, when), 0) + n
    kept_school_days = {
        (school, str(when)): n
        for school, when, n in await session.execute(
            select(sd.school_id, sd.day, sd.activations).where(sd.activations != 0)
        )
    }

    def drift(a: dict[Any, Any], b: dict[Any, Any]) -> list[Any]:
        return sorted(set(a.items()) ^ set(b.items()), key=str)

    return (
        drift(direct, kept),
        drift(coarse_direct, coarse_kept),
        drift(days, kept_days),
        drift(school_days, kept_school_days),
    )


NO_DRIFT = ([], [], [], [])


async def test_summaries_follow_every_change(
    gql: GraphQLClient, session: AsyncSession, board: Board
) -> None:
    assert await _summary_drift(session) == NO_DRIFT
    # Lifecycle steps, an activation, a lowered quantity, through the real code paths.
    from tests.api.test_delivery import PUBLISHER, SHOP, delivery, step, submit

    submitted = await submit(gql, delivery(f"dash-{board.rio}", school=board.a))
    entitlement_id = submitted["delivery"]["entitlements"][0]["id"]
    await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "p1")
    await step(gql, "entitlementLowerQuantity", entitlement_id, SHOP, "q1", quantity=12)
    await step(gql, "entitlementBlock", entitlement_id, SHOP, "b1")
    await session.execute(
        update(Entitlement)
        .where(Entitlement.school_id == await _id(session, Organisation, rio_id=board.b))
        .values(licences_used=Entitlement.licences_used + 1, status="LINK_READY")
    )
    await session.commit()
    assert await _summary_drift(session) == NO_DRIFT


async def test_a_board_costs_the_same_statements_as_one_school(
    gql: GraphQLClient, board: Board, statements: Any
) -> None:
    full = """query ($board: OrganisationIdentifierInput, $school: OrganisationIdentifierInput) {
      dashboard(board: $board, school: $school) {
        excludedSchools { school { rioId } }
        entitlementsByStatus { status } licenceTotals { quantityBought }
        activationsPerDay { day } failures { code recipient { code } }
        stuckDeliveries(pendingLongerThanMinutes: 60) { total deliveries { shop { code } } }
      } }"""
    as_ = (board.dashboard, "dashboard")
    statements.reset()
    await gql.data(full, {"school": board.ref(board.a)}, as_=as_)
    one = statements.count
    statements.reset()
    await gql.data(full, {"board": board.ref()}, as_=as_)
    assert statements.count <= one + 1, statements.statements  # + the board's schools


async def test_rebuilt_summaries_equal_the_kept_ones(session: AsyncSession, board: Board) -> None:
    from db.dashboard import rebuild_summaries

    await rebuild_summaries(session)
    assert await _summary_drift(session) == NO_DRIFT


async def test_figures_are_the_same_before_and_after_folding_the_differences(
    gql: GraphQLClient, session: AsyncSession, board: Board
) -> None:
    day = today()
    variables = {
        "board": board.ref(),
        "from": (day - timedelta(days=30)).isoformat(),
        "until": day.isoformat(),
    }
    as_ = (board.dashboard, "dashboard")
    before = (
        await gql.data(SUMMARY, variables, as_=as_),
        await gql.data(LICENCES, variables, as_=as_),
    )
    await compact(session)
    await session.commit()
    after = (
        await gql.data(SUMMARY, variables, as_=as_),
        await gql.data(LICENCES, variables, as_=as_),
    )
    assert before == after
