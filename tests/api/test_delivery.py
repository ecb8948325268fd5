"""Delivery (seed 004) through the GraphQL API on SQLite and PostgreSQL: the happy
path, every refusal code, every forbidden transition, idempotent repeats, and
that a refused message writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from db.demo import ean13
from db.models import AuditLog, Entitlement, Event, Product
from resolvers.clock import today
from tests.conftest import GraphQLClient

SHOP = ("demo-shop", "seller")
PUBLISHER = ("demo-publisher", "licensor")
PORTAL = ("demo-portal", "portal")
LMS = ("demo-lms", "portal")
DASHBOARD = ("demo-dashboard", "dashboard")
COMBINED = ("demo-combined", "seller")

DIGITAL = ean13(2)  # Nieuw Nederlands 1, published by demo-publisher
COMBI = ean13(5)
SET = ean13(6)  # Rekenrijk set, published by demo-combined
PHYSICAL = ean13(10)

SUBMIT = """
mutation ($input: DeliveryInput!) {
  deliverySubmit(input: $input) {
    __typename
    ... on DeliverySubmitted {
      replayed
      delivery {
        id referenceId
        totals { entitlements entitled provisioned linkReady failed licensed quantity }
        entitlements {
          id status variant quantity
          recipients { role state supplier { code } }
        }
      }
    }
    ... on ValidationError { code field message problems { code field message } }
    ... on ReferenceConflictError { referenceId message }
  }
}
"""

STEP_FIELDS = """
    __typename
    ... on EntitlementChanged {
      replayed
      entitlement { id status quantity recipients { role state failureCode supplier { code } } }
    }
    ... on MutationError { code field message }
    ... on TransitionNotAllowedError { currentStatus action }
"""


def line(**overrides: Any) -> dict[str, Any]:
    start = today()
    base: dict[str, Any] = {
        "productId": DIGITAL,
        "variant": "SCHOOL",
        "quantity": 30,
        "startDate": start.isoformat(),
        "activationUntilDate": (start + timedelta(days=60)).isoformat(),
        "licenceTerm": {"durationMonths": 12},
    }
    base.update(overrides)
    return base


def delivery(reference: str = "ref-1", school: str | None = "09QQ", **overrides: Any) -> dict:
    body: dict[str, Any] = {
        "referenceId": reference,
        "buyer": {"schoolId": school},
        "orderNumber": "ORD-1",
        "orderLines": [line()],
    }
    body.update(overrides)
    return body


async def submit(gql: GraphQLClient, body: dict, as_: tuple[str, ...] = SHOP) -> Any:
    return (await gql.data(SUBMIT, {"input": body}, as_=as_))["deliverySubmit"]


async def step(
    gql: GraphQLClient,
    mutation: str,
    entitlement_id: str,
    as_: tuple[str, ...],
    ref: str,
    **extra: Any,
) -> Any:
    arguments = {"entitlementId": entitlement_id, "referenceId": ref, **extra}
    query = f"""mutation ($input: {_input_type(mutation)}!) {{
        {mutation}(input: $input) {{ {STEP_FIELDS} }} }}"""
    return (await gql.data(query, {"input": arguments}, as_=as_))[mutation]


def _input_type(mutation: str) -> str:
    if mutation == "entitlementReportFailure":
        return "EntitlementFailureInput"
    if mutation == "entitlementLowerQuantity":
        return "EntitlementQuantityInput"
    return "EntitlementStepInput"


async def count(session: Any, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)))


# --- the happy path of seed 004 ---------------------------------------------------------


async def test_seed_004_delivery_travels_entitled_provisioned_link_ready(
    gql: GraphQLClient,
) -> None:
    # Steps 1-3: the shop's delivery facility turns the specification into an
    # entitlement with status Entitled, sent to the licence office and to every
    # portal and dashboard the school activated the entitlements exchange for.
    result = await submit(gql, delivery())
    assert result["__typename"] == "DeliverySubmitted"
    assert result["replayed"] is False
    (entitlement,) = result["delivery"]["entitlements"]
    assert entitlement["status"] == "ENTITLED"
    recipients = {(r["role"], r["supplier"]["code"]): r["state"] for r in entitlement["recipients"]}
    assert recipients == {
        ("LICENSOR", "demo-publisher"): "PENDING",
        ("PORTAL", "demo-portal"): "PENDING",
        ("PORTAL", "demo-lms"): "PENDING",
        ("DASHBOARD", "demo-dashboard"): "PENDING",
    }
    # Step 4: the buyer sees where the order stands.
    assert result["delivery"]["totals"]["entitled"] == 1
    entitlement_id = entitlement["id"]

    # Steps 5-7: the licence office provisions and confirms.
    provisioned = await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "lk-1")
    assert provisioned["entitlement"]["status"] == "PROVISIONED"

    # Steps 9a-11: both portals place the link; the first makes it LINK_READY, the
    # second only confirms its own part.
    linked = await step(gql, "entitlementLinkReady", entitlement_id, PORTAL, "portal-1")
    assert linked["entitlement"]["status"] == "LINK_READY"
    again = await step(gql, "entitlementLinkReady", entitlement_id, LMS, "lms-1")
    assert again["entitlement"]["status"] == "LINK_READY"
    states = {r["supplier"]["code"]: r["state"] for r in again["entitlement"]["recipients"]}
    assert states == {
        "demo-publisher": "CONFIRMED",
        "demo-portal": "CONFIRMED",
        "demo-lms": "CONFIRMED",
        "demo-dashboard": "PENDING",
    }

    # Steps 8 and 12: shop and dashboard see the same state and history.
    query = """query ($id: ID!) { entitlement(id: $id) {
        status history { kind status actorRole } } }"""
    for who in (SHOP, DASHBOARD, PORTAL, PUBLISHER):
        seen = (await gql.data(query, {"id": entitlement_id}, as_=who))["entitlement"]
        assert seen["status"] == "LINK_READY"
        assert [h["kind"] for h in seen["history"]] == [
            "ENTITLEMENT_CREATED",
            "ENTITLEMENT_PROVISIONED",
            "ENTITLEMENT_LINK_READY",
            "ENTITLEMENT_LINK_READY",
        ]
    totals = (
        await gql.data(
            """query { delivery(referenceId: "ref-1") { totals { entitled linkReady } } }""",
            as_=SHOP,
        )
    )["delivery"]["totals"]
    assert totals == {"entitled": 0, "linkReady": 1}


async def test_combined_role_skips_the_licence_office(gql: GraphQLClient) -> None:
    result = await submit(gql, delivery(orderLines=[line(productId=SET)]), as_=COMBINED)
    (entitlement,) = result["delivery"]["entitlements"]
    assert entitlement["status"] == "PROVISIONED"
    assert "LICENSOR" not in {r["role"] for r in entitlement["recipients"]}


async def test_combi_and_set_become_one_entitlement_each(gql: GraphQLClient) -> None:
    result = await submit(
        gql, delivery(orderLines=[line(productId=COMBI), line(productId=DIGITAL)])
    )
    assert len(result["delivery"]["entitlements"]) == 2
    assert result["delivery"]["totals"]["quantity"] == 60


async def test_school_without_activation_sends_only_to_the_licence_office(
    gql: GraphQLClient,
) -> None:
    result = await submit(gql, delivery(school="104A160"))
    (entitlement,) = result["delivery"]["entitlements"]
    assert [r["role"] for r in entitlement["recipients"]] == ["LICENSOR"]


async def test_named_pupils_become_entitlees(gql: GraphQLClient, session: Any) -> None:
    from db.models import Entitlee

    eck_ids = (
        await gql.data(
            """{ licences(first: 5, filter: {school: {value: "104A158"}}) {
             nodes { person { eckId } } } }"""
        )
    )["licences"]["nodes"]
    entitlees = [{"eckId": n["person"]["eckId"]} for n in eck_ids]
    body = delivery(orderLines=[line(variant="SCHOOL_PUPIL", quantity=None, entitlees=entitlees)])
    result = await submit(gql, body)
    (entitlement,) = result["delivery"]["entitlements"]
    assert entitlement["quantity"] is None
    assert (
        await session.scalar(
            select(func.count())
            .select_from(Entitlee)
            .where(Entitlee.entitlement_id == int(entitlement["id"]))
        )
        == 5
    )


# --- idempotency --------------------------------------------------------------------------


async def test_repeated_delivery_returns_the_original_and_writes_nothing(
    gql: GraphQLClient, session: Any
) -> None:
    first = await submit(gql, delivery("retry-1"))
    before = (await count(session, Entitlement), await count(session, Event))
    second = await submit(gql, delivery("retry-1"))
    assert second["replayed"] is True
    assert second["delivery"]["id"] == first["delivery"]["id"]
    assert (await count(session, Entitlement), await count(session, Event)) == before


async def test_reused_reference_with_other_content_is_a_conflict(gql: GraphQLClient) -> None:
    await submit(gql, delivery("retry-2"))
    conflict = await submit(gql, delivery("retry-2", orderNumber="OTHER"))
    assert conflict["__typename"] == "ReferenceConflictError"
    assert conflict["referenceId"] == "retry-2"


async def test_repeated_confirmation_gets_the_same_answer(gql: GraphQLClient) -> None:
    entitlement_id = (await submit(gql, delivery("r3")))["delivery"]["entitlements"][0]["id"]
    first = await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "lk-r3")
    second = await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "lk-r3")
    assert first["__typename"] == second["__typename"] == "EntitlementChanged"
    assert second["replayed"] is True
    # A new message (new reference) for the same step is a real, refused transition.
    third = await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "lk-r3-new")
    assert third["__typename"] == "TransitionNotAllowedError"
    assert third["currentStatus"] == "PROVISIONED"


# --- refusals with agreed codes ---------------------------------------------------------------


def _past(days: int) -> str:
    return (today() - timedelta(days=days)).isoformat()


REFUSALS: list[tuple[str, dict[str, Any], int, str]] = [
    ("no product", delivery(orderLines=[line(productId=None)]), 10, "orderLines.0.productId"),
    (
        "unknown product",
        delivery(orderLines=[line(productId="9789000000005")]),
        11,
        "orderLines.0.productId",
    ),
    (
        "malformed product",
        delivery(orderLines=[line(productId="123")]),
        11,
        "orderLines.0.productId",
    ),
    (
        "start before publication",
        delivery(orderLines=[line(startDate=_past(2000))]),
        14,
        "orderLines.0.startDate",
    ),
    ("no school", delivery(school=None), 8, "buyer.schoolId"),
    ("unknown school", delivery(school="99ZZ"), 9, "buyer.schoolId"),
    (
        "no subject",
        delivery(orderLines=[line(variant="SCHOOL_SUBJECT")]),
        4,
        "orderLines.0.schoolSubjectId",
    ),
    (
        "unknown subject",
        delivery(orderLines=[line(variant="SCHOOL_SUBJECT", schoolSubjectId="XX")]),
        5,
        "orderLines.0.schoolSubjectId",
    ),
    ("no group", delivery(orderLines=[line(variant="SCHOOL_GROUP")]), 6, "orderLines.0.groupId"),
    (
        "unknown group",
        delivery(orderLines=[line(variant="SCHOOL_GROUP", groupId="9Z")]),
        7,
        "orderLines.0.groupId",
    ),
    (
        "no pupils",
        delivery(orderLines=[line(variant="SCHOOL_PUPIL", quantity=None)]),
        2,
        "orderLines.0.entitlees",
    ),
    (
        "unknown pupil",
        delivery(
            orderLines=[
                line(
                    variant="SCHOOL_PUPIL",
                    quantity=None,
                    entitlees=[{"eckId": "https://ketenid.nl/201703/" + "0" * 128}],
                )
            ]
        ),
        3,
        "orderLines.0.entitlees.0.eckId",
    ),
    ("quantity zero", delivery(orderLines=[line(quantity=0)]), 30, "orderLines.0.quantity"),
    ("unknown contract", delivery(contractNumber="C-404"), 20, "contractNumber"),
    (
        "physical product",
        delivery(orderLines=[line(productId=PHYSICAL)]),
        99,
        "orderLines.0.productId",
    ),
    (
        "period reversed",
        delivery(orderLines=[line(activationUntilDate=_past(1))]),
        99,
        "orderLines.0.activationUntilDate",
    ),
    ("no reference", delivery(reference=""), 1, "referenceId"),
]


@pytest.mark.parametrize(("name", "body", "code", "field"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_invalid_delivery_is_refused_whole_with_the_agreed_code(
    gql: GraphQLClient, session: Any, name: str, body: dict, code: int, field: str
) -> None:
    before = (
        await count(session, Entitlement),
        await count(session, Event),
        await count(session, AuditLog),
    )
    result = await submit(gql, body)
    assert result["__typename"] == "ValidationError", result
    assert {"code": code, "field": field} in [
        {"code": p["code"], "field": p["field"]} for p in result["problems"]
    ], result["problems"]
    after = (
        await count(session, Entitlement),
        await count(session, Event),
        await count(session, AuditLog),
    )
    assert after == before


async def test_sale_window_codes_12_and_13(gql: GraphQLClient, session: Any) -> None:
    day = today()
    session.add_all(
        [
            Product(
                code=ean13(901),
                name="Nog niet te koop",
                type="DIGITAL",
                publisher_id=2,
                sale_start_date=day + timedelta(days=10),
            ),
            Product(
                code=ean13(902),
                name="Niet meer te koop",
                type="DIGITAL",
                publisher_id=2,
                sale_end_date=day - timedelta(days=1),
            ),
        ]
    )
    await session.commit()
    result = await submit(
        gql, delivery(orderLines=[line(productId=ean13(901)), line(productId=ean13(902))])
    )
    codes = {(p["code"], p["field"]) for p in result["problems"]}
    assert codes == {(12, "orderLines.0.productId"), (13, "orderLines.1.productId")}


async def test_every_problem_is_reported_at_once(gql: GraphQLClient) -> None:
    result = await submit(gql, delivery(orderLines=[line(productId=None), line(quantity=0)]))
    assert {p["code"] for p in result["problems"]} == {10, 30}


# --- transitions -----------------------------------------------------------------------------


async def _linked(gql: GraphQLClient, ref: str, **line_overrides: Any) -> str:
    body = delivery(ref, orderLines=[line(**line_overrides)])
    entitlement_id = (await submit(gql, body))["delivery"]["entitlements"][0]["id"]
    await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, f"{ref}-p")
    await step(gql, "entitlementLinkReady", entitlement_id, PORTAL, f"{ref}-l")
    return entitlement_id  # type: ignore[no-any-return]


async def test_block_then_unblock_restores_the_previous_status(gql: GraphQLClient) -> None:
    entitlement_id = await _linked(gql, "blk")
    blocked = await step(gql, "entitlementBlock", entitlement_id, SHOP, "blk-b")
    assert blocked["entitlement"]["status"] == "BLOCKED"
    unblocked = await step(gql, "entitlementUnblock", entitlement_id, SHOP, "blk-u")
    assert unblocked["entitlement"]["status"] == "LINK_READY"


async def test_cancelled_entitlement_can_be_blocked_but_not_cancelled_again(
    gql: GraphQLClient,
) -> None:
    entitlement_id = await _linked(gql, "cnl")
    cancelled = await step(gql, "entitlementCancel", entitlement_id, SHOP, "cnl-c")
    assert cancelled["entitlement"]["status"] == "CANCELLED"
    again = await step(gql, "entitlementCancel", entitlement_id, SHOP, "cnl-c2")
    assert again["__typename"] == "TransitionNotAllowedError"
    assert again["currentStatus"] == "CANCELLED"
    blocked = await step(gql, "entitlementBlock", entitlement_id, SHOP, "cnl-b")
    assert blocked["entitlement"]["status"] == "BLOCKED"
    restored = await step(gql, "entitlementUnblock", entitlement_id, SHOP, "cnl-u")
    assert restored["entitlement"]["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("mutation", "who", "current"),
    [
        ("entitlementLinkReady", PORTAL, "ENTITLED"),
        ("entitlementUnblock", SHOP, "ENTITLED"),
    ],
)
async def test_forbidden_transition_names_the_current_status(
    gql: GraphQLClient, mutation: str, who: tuple[str, str], current: str
) -> None:
    entitlement_id = (await submit(gql, delivery("fbd")))["delivery"]["entitlements"][0]["id"]
    refused = await step(gql, mutation, entitlement_id, who, "fbd-1")
    assert refused["__typename"] == "TransitionNotAllowedError"
    assert refused["currentStatus"] == current
    assert current in refused["message"]


async def test_individual_entitlement_with_a_licence_cannot_be_cancelled(
    gql: GraphQLClient, session: Any
) -> None:
    # The demo's SCHOOL_PUPIL entitlement has licences; make it cancellable by
    # status (unblock it first) and try.
    row = (
        await session.scalars(select(Entitlement).where(Entitlement.variant == "SCHOOL_PUPIL"))
    ).one()
    unblocked = await step(gql, "entitlementUnblock", str(row.id), SHOP, "ind-u")
    assert unblocked["entitlement"]["status"] == "LINK_READY"
    refused = await step(gql, "entitlementCancel", str(row.id), SHOP, "ind-c")
    assert refused["__typename"] == "RuleViolationError"
    assert refused["code"] == 42


@pytest.mark.parametrize(("quantity", "code"), [(30, 41), (40, 41), (0, 30)])
async def test_quantity_may_only_go_down(gql: GraphQLClient, quantity: int, code: int) -> None:
    entitlement_id = await _linked(gql, f"qty-{quantity}")
    refused = await step(
        gql, "entitlementLowerQuantity", entitlement_id, SHOP, "q1", quantity=quantity
    )
    assert refused["code"] == code
    lowered = await step(gql, "entitlementLowerQuantity", entitlement_id, SHOP, "q2", quantity=20)
    assert lowered["entitlement"]["quantity"] == 20


async def test_quantity_never_below_activated_licences(gql: GraphQLClient, session: Any) -> None:
    row = (await session.scalars(select(Entitlement).where(Entitlement.licences_used == 120))).one()
    refused = await step(gql, "entitlementLowerQuantity", str(row.id), SHOP, "q-low", quantity=100)
    assert refused["code"] == 41


async def test_failure_report_keeps_status_and_a_retry_succeeds(gql: GraphQLClient) -> None:
    entitlement_id = (await submit(gql, delivery("fail")))["delivery"]["entitlements"][0]["id"]
    await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "fail-p")
    failed = await step(
        gql,
        "entitlementReportFailure",
        entitlement_id,
        PORTAL,
        "fail-f",
        code=7,
        message="group 1A unknown",
    )
    assert failed["entitlement"]["status"] == "PROVISIONED"
    portal = next(
        r for r in failed["entitlement"]["recipients"] if r["supplier"]["code"] == "demo-portal"
    )
    assert (portal["state"], portal["failureCode"]) == ("FAILED", 7)
    retried = await step(gql, "entitlementLinkReady", entitlement_id, PORTAL, "fail-l")
    portal = next(
        r for r in retried["entitlement"]["recipients"] if r["supplier"]["code"] == "demo-portal"
    )
    assert (retried["entitlement"]["status"], portal["state"]) == ("LINK_READY", "CONFIRMED")


async def test_unknown_failure_code_is_refused(gql: GraphQLClient) -> None:
    entitlement_id = (await submit(gql, delivery("fc")))["delivery"]["entitlements"][0]["id"]
    refused = await step(
        gql, "entitlementReportFailure", entitlement_id, PUBLISHER, "fc-1", code=12345, message="?"
    )
    assert refused["__typename"] == "RuleViolationError"
    assert refused["field"] == "code"


# --- who may act ------------------------------------------------------------------------------


async def test_other_shop_cannot_touch_the_entitlement(gql: GraphQLClient) -> None:
    entitlement_id = (await submit(gql, delivery("own")))["delivery"]["entitlements"][0]["id"]
    refused = await step(gql, "entitlementCancel", entitlement_id, COMBINED, "own-c")
    assert refused["__typename"] == "NotFoundError"
    assert refused["code"] == 40


async def test_portal_that_is_no_recipient_gets_code_40(gql: GraphQLClient) -> None:
    entitlement_id = (await submit(gql, delivery("rcp", school="104A160")))["delivery"][
        "entitlements"
    ][0]["id"]
    refused = await step(gql, "entitlementLinkReady", entitlement_id, PORTAL, "rcp-l")
    assert refused["code"] == 40
    seen = await gql.data(
        "query ($id: ID!) { entitlement(id: $id) { id } }", {"id": entitlement_id}, as_=PORTAL
    )
    assert seen["entitlement"] is None


async def test_unknown_entitlement_is_code_40(gql: GraphQLClient) -> None:
    refused = await step(gql, "entitlementCancel", "999999", SHOP, "unknown")
    assert refused["code"] == 40


# --- events and audit in the same transaction ---------------------------------------------------


async def test_every_change_writes_event_and_audit_rows(gql: GraphQLClient, session: Any) -> None:
    events_before = await count(session, Event)
    audit_before = await count(session, AuditLog)
    entitlement_id = await _linked(gql, "evt")
    await step(gql, "entitlementCancel", entitlement_id, SHOP, "evt-c")
    assert await count(session, Event) == events_before + 4
    assert await count(session, AuditLog) == audit_before + 4
    kinds = list(
        await session.scalars(
            select(Event.kind).where(Event.entitlement_id == int(entitlement_id)).order_by(Event.id)
        )
    )
    assert kinds == [
        "ENTITLEMENT_CREATED",
        "ENTITLEMENT_PROVISIONED",
        "ENTITLEMENT_LINK_READY",
        "ENTITLEMENT_CANCELLED",
    ]
    actors = list(
        await session.scalars(select(AuditLog.role).order_by(AuditLog.id.desc()).limit(4))
    )
    assert actors == ["seller", "portal", "licensor", "seller"]


async def test_large_named_delivery_costs_a_bounded_number_of_statements(
    gql: GraphQLClient, session: Any, statements: Any
) -> None:
    from db.models import Person, PersonIdentifier

    eck_ids = list(
        await session.scalars(
            select(PersonIdentifier.value)
            .join(Person, Person.id == PersonIdentifier.person_id)
            .where(PersonIdentifier.scheme == "ECK_ID")
            .limit(80)
        )
    )
    statements.reset()
    small = await submit(
        gql,
        delivery(
            "big-1",
            orderLines=[
                line(
                    variant="SCHOOL_PUPIL",
                    quantity=None,
                    entitlees=[{"eckId": e} for e in eck_ids[:2]],
                )
            ],
        ),
    )
    few = statements.count
    statements.reset()
    large = await submit(
        gql,
        delivery(
            "big-2",
            orderLines=[
                line(
                    variant="SCHOOL_PUPIL", quantity=None, entitlees=[{"eckId": e} for e in eck_ids]
                )
            ],
        ),
    )
    assert small["__typename"] == large["__typename"] == "DeliverySubmitted"
    assert statements.count == few, statements.statements


async def test_bulk_eck_ids_are_entitlees_and_report_their_own_paths(
    gql: GraphQLClient, session: Any
) -> None:
    from db.models import Entitlee, PersonIdentifier

    eck_ids = list(await session.scalars(
        select(PersonIdentifier.value).where(PersonIdentifier.scheme == "ECK_ID").limit(3)))
    unknown = "https://ketenid.nl/201703/" + "a" * 128
    refused = await submit(gql, delivery("bulk-1", orderLines=[line(
        variant="SCHOOL_PUPIL", quantity=None, entitlees=[{"eckId": eck_ids[0]}],
        eckIds=[eck_ids[1], unknown])]))
    assert [(p["code"], p["field"]) for p in refused["problems"]] == [
        (3, "orderLines.0.eckIds.1")]
    accepted = await submit(gql, delivery("bulk-2", orderLines=[line(
        variant="SCHOOL_PUPIL", quantity=None, entitlees=[{"eckId": eck_ids[0]}],
        eckIds=eck_ids[1:])]))
    entitlement_id = int(accepted["delivery"]["entitlements"][0]["id"])
    assert await session.scalar(select(func.count()).select_from(Entitlee).where(
        Entitlee.entitlement_id == entitlement_id)) == 3
