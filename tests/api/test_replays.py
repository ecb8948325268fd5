"""A repeated message gets its answer read with the caller's rights of now (issue 12
item 3), for every mutation that is idempotent by referenceId, on SQLite and
PostgreSQL.

Each case: the first message is answered with the school's consent in place; the
school then takes its consent back (or the mandate runs out); the same message
again is still not processed twice (`replayed`), but what the answer shows is
checked like any read: a portal is told CONSENT_REQUIRED instead of the
entitlement; the shop and the licence office, whose entitlements and licences
stay theirs, no longer see which pupil holds a licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import DataExchange, Entitlement, Event, ProcessingAgreement, Product
from domain.entitlements import EntitlementStatus, Variant
from resolvers.clock import today
from tests.api.test_delivery import PORTAL, PUBLISHER, SHOP, delivery
from tests.conftest import GraphQLClient
from tests.factories import (
    grant_consent,
    make_entitlement,
    make_licence,
    make_person,
    make_product,
    school_id,
    supplier_id,
)

COLLEGE = "104A158"
HOLDER = "licences { person { eckId } }"
ENTITLEMENT_ANSWER = f"""__typename
  ... on EntitlementChanged {{ replayed entitlement {{ id status
        recipients {{ failureMessage }} history {{ kind }} {HOLDER} }} }}
  ... on MutationError {{ code field message }}"""


@dataclass
class Case:
    """One idempotent mutation: its state before, who sends it, and its input."""

    mutation: str
    input_type: str
    caller: tuple[str, ...]
    status: EntitlementStatus = EntitlementStatus.LINK_READY
    extra: dict[str, Any] | None = None


STEPS = [
    Case("entitlementProvision", "EntitlementStepInput", PUBLISHER, EntitlementStatus.ENTITLED),
    Case("entitlementLinkReady", "EntitlementStepInput", PORTAL, EntitlementStatus.PROVISIONED),
    Case(
        "entitlementReportFailure",
        "EntitlementFailureInput",
        PORTAL,
        EntitlementStatus.PROVISIONED,
        {"code": 7, "message": "groep onbekend"},
    ),
    Case(
        "entitlementReportFailure",
        "EntitlementFailureInput",
        PUBLISHER,
        EntitlementStatus.ENTITLED,
        {"code": 7, "message": "groep onbekend"},
    ),
    Case("entitlementCancel", "EntitlementStepInput", SHOP),
    Case("entitlementBlock", "EntitlementStepInput", SHOP),
    Case("entitlementUnblock", "EntitlementStepInput", SHOP, EntitlementStatus.BLOCKED),
    Case("entitlementLowerQuantity", "EntitlementQuantityInput", SHOP, extra={"quantity": 20}),
]


async def revoke(session: AsyncSession, supplier: str, data_type: str) -> None:
    await session.execute(
        update(DataExchange)
        .where(
            DataExchange.supplier_id == await supplier_id(session, supplier),
            DataExchange.school_id == await school_id(session, COLLEGE),
            DataExchange.data_type == data_type,
            DataExchange.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
    await session.commit()


async def consent_to_pupils(session: AsyncSession, caller: tuple[str, ...]) -> None:
    """Give the shop or licence office the college's school organisation data."""
    await grant_consent(
        session,
        school=await school_id(session, COLLEGE),
        supplier=await supplier_id(session, caller[0]),
        role=caller[1],
        data_types=["SCHOOL_ORGANISATION"],
    )
    await session.commit()


async def events_of(session: AsyncSession, entitlement_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Event).where(Event.entitlement_id == entitlement_id)
        )
    )


def codes(result: Any) -> set[str]:
    return {str(e.extensions["code"]) for e in result.errors or []}


@pytest.mark.parametrize(
    "case", STEPS, ids=[f"{c.mutation}-{c.caller[1]}" for c in STEPS]
)
async def test_a_replayed_step_is_answered_with_the_rights_of_now(
    gql: GraphQLClient, session: AsyncSession, case: Case
) -> None:
    college = await school_id(session, COLLEGE)
    pupil = await make_person(session, school=college)
    entitlement = await make_entitlement(
        session,
        product=await make_product(session),
        variant=Variant.SCHOOL,
        school=college,
        status=case.status,
    )
    await make_licence(session, entitlement=entitlement, person=pupil.id)
    await session.commit()
    is_portal = case.caller == PORTAL
    if not is_portal:
        await consent_to_pupils(session, case.caller)
    message = {"entitlementId": str(entitlement.id), "referenceId": "replay-1"}
    message.update(case.extra or {})
    query = f"""mutation ($input: {case.input_type}!) {{
        {case.mutation}(input: $input) {{ {ENTITLEMENT_ANSWER} }} }}"""

    first = await gql.execute(query, {"input": message}, as_=case.caller)
    assert first.errors is None, first.errors
    events = await events_of(session, entitlement.id)
    answer = first.data[case.mutation]
    assert answer["__typename"] == "EntitlementChanged"
    assert answer["entitlement"]["licences"] == [{"person": {"eckId": pupil.eck_id}}]

    if is_portal:
        await revoke(session, "demo-portal", "ENTITLEMENTS")
    else:
        await revoke(session, case.caller[0], "SCHOOL_ORGANISATION")
    replay = await gql.execute(query, {"input": message}, as_=case.caller)

    if is_portal:
        # Not the stored answer, nor the entitlement as it is now: the reason.
        assert codes(replay) == {"CONSENT_REQUIRED"}
        assert replay.data is None or replay.data[case.mutation] is None
    else:
        assert replay.data[case.mutation]["replayed"] is True
        assert replay.data[case.mutation]["entitlement"]["licences"] == [{"person": None}]
        assert codes(replay) == {"CONSENT_REQUIRED"}
        assert replay.errors[0].path[-1] == "person"
    assert await events_of(session, entitlement.id) == events  # still processed once


async def test_a_replayed_delivery_is_answered_with_the_rights_of_now(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    query = """mutation ($input: DeliveryInput!) { deliverySubmit(input: $input) {
        __typename ... on DeliverySubmitted { replayed delivery { entitlements {
          id """ + HOLDER + """ } } } } }"""
    body = delivery("replay-delivery")
    first = await gql.data(query, {"input": body}, as_=SHOP)
    (created,) = first["deliverySubmit"]["delivery"]["entitlements"]
    # A pupil activates a licence on it; the shop may see pupils for a while.
    college = await school_id(session, COLLEGE)
    pupil = await make_person(session, school=college)
    row = await session.get(Entitlement, int(created["id"]))
    assert row is not None
    await make_licence(session, entitlement=row, person=pupil.id)
    await session.commit()
    await consent_to_pupils(session, SHOP)
    shown = await gql.data(query, {"input": body}, as_=SHOP)
    assert shown["deliverySubmit"]["replayed"] is True
    assert shown["deliverySubmit"]["delivery"]["entitlements"][0]["licences"] == [
        {"person": {"eckId": pupil.eck_id}}
    ]
    await revoke(session, "demo-shop", "SCHOOL_ORGANISATION")
    replay = await gql.execute(query, {"input": body}, as_=SHOP)
    assert replay.data["deliverySubmit"]["replayed"] is True
    assert replay.data["deliverySubmit"]["delivery"]["entitlements"][0]["licences"] == [
        {"person": None}
    ]
    assert codes(replay) == {"CONSENT_REQUIRED"}


async def test_a_replayed_roster_needs_the_mandate_of_now(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    from tests.api.test_roster import UPSERT, roster

    body = roster(COLLEGE, referenceId="replay-roster")
    first = await gql.data(UPSERT, {"input": body}, as_=("demo-sis", "sis"))
    assert first["schoolRosterUpsert"]["__typename"] == "SchoolRosterUpserted"
    await session.execute(
        update(ProcessingAgreement)
        .where(
            ProcessingAgreement.supplier_id == await supplier_id(session, "demo-sis"),
            ProcessingAgreement.school_id == await school_id(session, COLLEGE),
        )
        .values(valid_until=today() - timedelta(days=1))
    )
    await session.commit()
    replay = await gql.execute(UPSERT, {"input": body}, as_=("demo-sis", "sis"))
    assert codes(replay) == {"CONSENT_REQUIRED"}


async def test_a_replayed_activation_and_block_follow_the_rights_of_now(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    college = await school_id(session, COLLEGE)
    product = await make_product(session)
    pupil = await make_person(session, school=college)
    await make_entitlement(session, product=product, variant=Variant.SCHOOL, school=college)
    await session.commit()
    await consent_to_pupils(session, PUBLISHER)
    await consent_to_pupils(session, SHOP)
    code = await session.scalar(select(Product.code).where(Product.id == product.id))
    activate = """mutation ($input: LicenceActivateInput!) { licenceActivate(input: $input) {
        __typename ... on LicenceGranted { replayed licence { id person { eckId } } } } }"""
    message = {
        "productId": code,
        "school": {"value": COLLEGE},
        "person": {"eckId": pupil.eck_id},
        "referenceId": "replay-click",
    }
    first = (await gql.data(activate, {"input": message}, as_=PUBLISHER))["licenceActivate"]
    assert first["licence"]["person"] == {"eckId": pupil.eck_id}
    block = """mutation ($input: LicenceStepInput!) { licenceBlock(input: $input) {
        __typename ... on LicenceChanged { replayed licence { id person { eckId } } } } }"""
    step = {"licenceId": first["licence"]["id"], "referenceId": "replay-block"}
    blocked = (await gql.data(block, {"input": step}, as_=SHOP))["licenceBlock"]
    assert blocked["licence"]["person"] == {"eckId": pupil.eck_id}

    await revoke(session, "demo-publisher", "SCHOOL_ORGANISATION")
    await revoke(session, "demo-shop", "SCHOOL_ORGANISATION")
    for query, variables, caller, name in [
        (activate, {"input": message}, PUBLISHER, "licenceActivate"),
        (block, {"input": step}, SHOP, "licenceBlock"),
    ]:
        replay = await gql.execute(query, variables, as_=caller)
        assert replay.data[name]["replayed"] is True
        assert replay.data[name]["licence"]["person"] is None
        assert codes(replay) == {"CONSENT_REQUIRED"}
