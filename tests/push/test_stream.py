"""What reaches an endpoint, on SQLite and PostgreSQL: only what its supplier may
see, consent revoked mid-stream, seeds of a school's current state (GraphQL and
`POST /requestseed`), and the catch-up `GET /events`."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from db.models import Entitlement, Event, Licence
from db.push import Lookups
from domain.events import EventKind
from push.envelope import envelope, message_id
from tests.conftest import LiveGateway, token_for
from tests.push.conftest import (
    PORTAL,
    PUBLISHER,
    SHOP,
    Clock,
    gql,
    queued,
    ref,
    register,
    submit,
)
from tests.push.receiver import Receiver, serve

OPERATOR = ("operator", "operator")
EXCHANGE = """mutation ($input: DataExchangeInput!) { %s(input: $input) { __typename } }"""
PORTAL_ENTITLEMENTS = {
    "school": {"value": "104A158"},
    "supplierCode": "demo-portal",
    "role": "PORTAL",
    "dataType": "ENTITLEMENTS",
}
LOWER = """mutation ($input: EntitlementQuantityInput!) {
  entitlementLowerQuantity(input: $input) { __typename } }"""


async def lower(live: LiveGateway, entitlement_id: str, quantity: int) -> None:
    data = await live.execute(
        LOWER,
        {
            "input": {
                "entitlementId": entitlement_id,
                "referenceId": ref("lower"),
                "quantity": quantity,
            }
        },
        as_=SHOP,
    )
    assert data["entitlementLowerQuantity"]["__typename"] == "EntitlementChanged", data


def quantities(receiver: Receiver) -> list[int]:
    return [e["data"]["entitlement"]["entitlee"]["quantity"] for e in receiver.events()]


async def test_consent_revoked_mid_stream_stops_delivery_at_that_event(
    live: LiveGateway, service_for, clock: Clock
) -> None:
    async with serve() as portal, serve() as shop:
        portal_id = await register(live, portal.url, as_=PORTAL)
        shop_id = await register(live, shop.url, as_=SHOP)
        service = await service_for(clock)
        (entitlement,) = await submit(live, lines=1)  # school 09QQ = 104A158
        await lower(live, entitlement, 29)
        await queued(service, shop_id, 2)
        await live.execute(
            EXCHANGE % "dataExchangeRevoke", {"input": PORTAL_ENTITLEMENTS}, as_=OPERATOR
        )
        try:
            await lower(live, entitlement, 28)  # while revoked
            # The portal's endpoint reads its backlog only after consent is back: 28 is
            # judged for its own moment (revoked), not for the moment it is read.
            shop_worker = await queued(service, shop_id, 3)
        finally:
            await live.execute(
                EXCHANGE % "dataExchangeActivate", {"input": PORTAL_ENTITLEMENTS}, as_=OPERATOR
            )
        await lower(live, entitlement, 27)
        shop_worker = await queued(service, shop_id, 4)
        while await shop_worker.step() == "sent":
            pass
        portal_worker = await queued(service, portal_id, 3)
        while await portal_worker.step() == "sent":
            pass
    assert quantities(shop) == [30, 29, 28, 27]
    assert quantities(portal) == [30, 29, 27]


async def test_other_suppliers_and_schools_without_consent_get_nothing(
    live: LiveGateway, service_for, clock: Clock
) -> None:
    async with serve() as lms:
        lms_id = await register(live, lms.url, as_=("demo-lms", "portal"))
        service = await service_for(clock)
        # demo-lms is a recipient at 09QQ, not at 11CD (that school activated no portal).
        await submit(live, lines=1, school="11CD")
        (visible,) = await submit(live, lines=1, school="09QQ")
        worker = await queued(service, lms_id, 1)
        assert await worker.step() == "sent"
        assert await worker.step() == "idle"
    assert [e["objectId"] for e in lms.events()] == [visible]


SEED = """mutation ($id: ID!, $school: OrganisationIdentifierInput!) {
  pushSeedRequest(endpointId: $id, school: $school) {
    __typename ... on PushSeedRequested { seed { id doneAt sent } } } }"""
SEEDS = """query ($id: ID!) { pushEndpoint(id: $id) { seeds { doneAt sent school { rioId } } } }"""


async def test_a_seed_pushes_the_schools_current_state_then_the_live_events_follow(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    before = await submit(live, lines=2)  # before the endpoint existed
    endpoint_id = await register(live, receiver.url, as_=PORTAL)
    service = await service_for(clock)
    await service.refresh_leases()
    asked = await gql(live, SEED, {"id": endpoint_id, "school": {"value": "09QQ"}}, PORTAL)
    assert asked["data"]["pushSeedRequest"]["__typename"] == "PushSeedRequested"
    worker = service.worker(int(endpoint_id))
    worker.seeds_due = True
    assert await worker.step() == "sent"
    seeded = receiver.events()
    assert set(before) <= {e["objectId"] for e in seeded}
    assert {e["type"] for e in seeded} == {"mp.Entitlement"}
    # Only what the portal may see: entitlements of 09QQ it is a recipient of.
    assert all(e["data"]["entitlement"]["entitlee"]["schoolId"] == "104A158" for e in seeded)
    seeds = (await gql(live, SEEDS, {"id": endpoint_id}, PORTAL))["data"]["pushEndpoint"]["seeds"]
    assert seeds[0]["doneAt"] is not None
    assert seeds[0]["sent"] == len(seeded)
    assert seeds[0]["school"]["rioId"] == "104A158"
    (after,) = await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    assert await worker.step() == "sent"
    assert receiver.events()[-1]["objectId"] == after
    # The same over the chain's own route.
    response = await live.client.post(
        "/requestseed/entitlement-api",
        params={"schoolId": "09QQ"},
        headers={"Authorization": f"Bearer {token_for(*PORTAL)}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 0
    seeds = (await gql(live, SEEDS, {"id": endpoint_id}, PORTAL))["data"]["pushEndpoint"]["seeds"]
    assert len(seeds) == 2
    for api, school, status in (
        ("usage-api", "09QQ", 400),
        ("entitlement-api", None, 400),
        ("entitlement-api", "99ZZ", 400),
    ):
        response = await live.client.post(
            f"/requestseed/{api}",
            params={"schoolId": school} if school else {},
            headers={"Authorization": f"Bearer {token_for(*PORTAL)}"},
        )
        assert response.status_code == status, (api, school)
    response = await live.client.post("/requestseed/entitlement-api", params={"schoolId": "09QQ"})
    assert response.status_code == 401
    assert response.json()["status"] == 3


async def _events(live: LiveGateway, as_: tuple[str, ...], **params: Any) -> Any:
    return await live.client.get(
        "/events", params=params, headers={"Authorization": f"Bearer {token_for(*as_)}"}
    )


async def test_catch_up_with_get_events(live: LiveGateway, service_for, clock: Clock) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    entitlements = await submit(live, lines=3)
    found: list[dict[str, Any]] = []
    for _ in range(1800):  # on PostgreSQL: until older transactions on the server end
        response = await _events(live, PUBLISHER, createdAfter=since, limit=100)
        assert response.status_code == 200, response.text
        found = [e for e in response.json() if e["objectId"] in entitlements]
        if len(found) == 3:
            break
        await asyncio.sleep(0.05)
    assert [e["objectId"] for e in found] == entitlements
    assert all(e["type"] == "mp.Entitlement" for e in found)
    # The same ids as pushed.
    everything = (await _events(live, PUBLISHER, createdAfter=since, limit=100)).json()
    first = everything.index(found[0])
    page = (await _events(live, PUBLISHER, createdAfter=since, limit=2, start=first)).json()
    assert page == found[:2]
    page = (await _events(live, PUBLISHER, createdAfter=since, limit=2, start=first + 2)).json()
    assert page[0] == found[2]
    confirmations = await _events(
        live, PUBLISHER, createdAfter=since, type="mp.ChangeLicenseStatus"
    )
    assert confirmations.json() == []
    # A portal at a school without its consent sees none of 11CD's.
    (other,) = await submit(live, lines=1, school="11CD")
    lms = (await _events(live, ("demo-lms", "portal"), createdAfter=since, limit=100)).json()
    assert other not in [e["objectId"] for e in lms]
    for bad in (
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"start": "10001"},
        {"start": "x"},
        {"createdAfter": "yesterday"},
        {"createdAfter": "2026-01-01T00:00:00"},
        {"createdAfter": "9" * 10_000},
        {"type": "sis.Student"},
    ):
        response = await _events(live, PUBLISHER, **bad)
        assert response.status_code == 400, bad
        assert response.json()["status"] == 1
    assert (await live.client.get("/events")).status_code == 401


def test_licence_events_become_initial_activation_and_change_licence_status() -> None:
    moment = datetime(2026, 9, 1, 6, 30, tzinfo=UTC)
    entitlement = Entitlement(
        id=11,
        product_id=3,
        school_id=5,
        variant="SCHOOL",
        quantity=30,
        status="LINK_READY",
        start_date=date(2026, 8, 1),
        activation_until_date=date(2026, 10, 1),
        min_expiration_date=None,
    )
    licence = Licence(id=77, entitlement_id=11, person_id=9, expiration_date=date(2027, 8, 31))
    lookups = Lookups(
        products={3: "9789000000029"}, schools={5: "104A158"}, eck_ids={9: "https://ketenid.nl/x"}
    )
    activated = Event(
        id=501,
        kind=EventKind.LICENCE_ACTIVATED.value,
        entitlement_id=11,
        licence_id=77,
        status="ACTIVATED",
        occurred_at=moment,
        payload={"expirationDate": "2027-08-31"},
    )
    body = envelope(activated, entitlement, licence, lookups)
    assert body["type"] == "la.InitialActivation"
    assert body["objectId"] == "77"
    assert body["id"] == message_id(501)
    assert body["created"] == "2026-09-01T06:30:00.000Z"
    assert body["data"] == {
        "entitlementId": "11",
        "schemaVersion": "1.3.0",
        "productId": "9789000000029",
        "usageDate": "2026-09-01",
        "usageType": "initial-activation",
        "expirationDate": "2027-08-31",
        "schoolId": "104A158",
        "eckId": "https://ketenid.nl/x",
    }
    blocked = Event(
        id=502,
        kind=EventKind.LICENCE_BLOCKED.value,
        entitlement_id=11,
        licence_id=77,
        status="BLOCKED",
        occurred_at=moment,
    )
    body = envelope(blocked, entitlement, licence, lookups)
    assert body["type"] == "mp.ChangeLicenseStatus"
    assert body["data"]["newLicenseStatus"] == "blocked"
    failed = Event(
        id=503,
        kind=EventKind.ENTITLEMENT_FAILED.value,
        entitlement_id=11,
        status="PROVISIONED",
        occurred_at=moment,
        payload={"code": 9, "message": "school unknown", "recipientRole": "PORTAL"},
    )
    body = envelope(failed, entitlement, None, lookups)
    assert body["type"] == "mp.EntitlementConfirmation"
    assert body["data"]["success"] is False
    assert body["data"]["status"] == 9
    assert body["data"]["newEntitlementStatus"] == "provisioned"
