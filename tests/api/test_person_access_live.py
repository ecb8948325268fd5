"""The person rule on the live paths (issue 12 item 2): a licence in a live event, and
in a resumed replay of past events, shows its holder under the same rule as
`pupil(eckId:)`. Through the real broker on SQLite and PostgreSQL (the harness of
tests/api/test_live.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from db.demo import ean13
from db.engine import create_sessionmaker
from db.models import Enrolment, Entitlement, Licence, Organisation, PersonIdentifier, Product
from db.pagination import event_cursor
from tests.api.test_delivery import PORTAL, PUBLISHER, SHOP
from tests.api.test_live import WAIT, LiveApp, live_app, new_delivery, step  # noqa: F401

HOLDERS = """subscription ($after: String) {
  licenceActivations(after: $after) { cursor licenceId licence { id person { eckId } } } }"""


async def pupil_without_a_licence(gw: LiveApp, product: int) -> str:
    async with create_sessionmaker(gw.engine)() as session:
        eck_id = await session.scalar(
            select(PersonIdentifier.value)
            .join(Enrolment, Enrolment.person_id == PersonIdentifier.person_id)
            .join(Organisation, Organisation.id == Enrolment.school_id)
            .where(
                Organisation.rio_id == "104A158",
                PersonIdentifier.scheme == "ECK_ID",
                PersonIdentifier.person_id.not_in(
                    select(Licence.person_id).where(
                        Licence.product_id == product, Licence.person_id.is_not(None)
                    )
                ),
            )
            .limit(1)
        )
    assert eck_id is not None
    return str(eck_id)


async def next_result(stream: Any) -> Any:
    import asyncio

    pending, stream.pending = stream.pending, None
    return await asyncio.wait_for(pending or stream.results.__anext__(), WAIT)


async def test_a_live_and_a_replayed_licence_show_their_holder_by_the_person_rule(
    live_app: LiveApp,  # noqa: F811
) -> None:
    gw = live_app
    portal = await gw.subscribe(HOLDERS, {}, as_=PORTAL)
    shop = await gw.subscribe(HOLDERS, {}, as_=SHOP)

    # Stepping Stones 1: no demo licences on it, so a pupil gets a new one.
    _delivery, (entitlement_id,) = await new_delivery(gw, productId=ean13(3))
    await step(gw, "entitlementProvision", entitlement_id, PUBLISHER)
    await step(gw, "entitlementLinkReady", entitlement_id, PORTAL)
    async with create_sessionmaker(gw.engine)() as session:
        product = await session.scalar(
            select(Entitlement.product_id).where(Entitlement.id == int(entitlement_id))
        )
        code = await session.scalar(select(Product.code).where(Product.id == product))
    assert product is not None
    eck_id = await pupil_without_a_licence(gw, product)
    granted = await gw.data(
        """mutation ($input: LicenceActivateInput!) { licenceActivate(input: $input) {
            __typename ... on LicenceGranted { licence { id } } } }""",
        {"input": {"productId": code, "school": {"value": "104A158"},
                   "person": {"eckId": eck_id}}},
        as_=PUBLISHER,
    )
    licence_id = granted["licenceActivate"]["licence"]["id"]

    # The portal may read the college's pupils: the holder is shown.
    seen = await next_result(portal)
    assert seen.errors is None, seen.errors
    event = seen.data["licenceActivations"]
    assert event["licence"] == {"id": licence_id, "person": {"eckId": eck_id}}

    # The shop receives the activation (its own sale) but not who the pupil is.
    told = await next_result(shop)
    event = told.data["licenceActivations"]
    assert event["licenceId"] == licence_id
    assert event["licence"] == {"id": licence_id, "person": None}
    assert [(e.path, e.extensions["code"]) for e in told.errors] == [
        (["licenceActivations", "licence", "person"], "CONSENT_REQUIRED")
    ]
    await portal.close()
    await shop.close()

    # A resumed replay of the same event answers the same.
    stream = await gw.stream_events()
    (at,) = [i for i, row in enumerate(stream) if row.licence_id == int(licence_id)]
    assert at > 0
    before = event_cursor(stream[at - 1].tx_id, stream[at - 1].id)
    for caller, person in ((PORTAL, {"eckId": eck_id}), (SHOP, None)):
        replay = await gw.subscribe(HOLDERS, {"after": before}, as_=caller)
        while True:
            result = await next_result(replay)
            assert result.data is not None, result.errors
            item = result.data["licenceActivations"]
            if item["licenceId"] == licence_id:
                break
        assert item["licence"]["person"] == person
        assert bool(result.errors) is (person is None)
        await replay.close()
