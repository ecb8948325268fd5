"""Live delivery progress as a portal meets it: real uvicorn processes on a free
port, real websocket clients (gql for both protocols, raw `websockets` where the
test needs the close code), on SQLite (one process) and PostgreSQL (two).

Timeouts only keep a broken test from hanging; nothing here asserts speed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from db.pagination import decode_event_cursor
from resolvers.clock import today
from tests.conftest import _create_postgres_database, _drop_postgres_database, token_for
from tests.e2e.conftest import ROOT, Gateway, start_gateway, stop_gateway

TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # graphql-transport-ws
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL  # graphql-ws

SHOP = ("demo-shop", "seller")
PUBLISHER = ("demo-publisher", "licensor")
PORTAL = ("demo-portal", "portal")
LMS = ("demo-lms", "portal")
DIGITAL = "9789000000029"  # Nieuw Nederlands 1, demo-publisher

# Only a guard against a hang (a slow, shared machine), never a timing assertion.
WAIT = 90

LIVE_ENV = {
    "KETENPOORT_LIVE_POLL_SECONDS": "0.2",
    "KETENPOORT_LIVE_QUEUE_SIZE": "100",
    "KETENPOORT_LIVE_BATCH_SIZE": "50",
    "KETENPOORT_WS_KEEP_ALIVE_SECONDS": "1",
    "KETENPOORT_RATE_LIMIT_PER_SECOND": "0",
}

ITEM = """
    __typename
    ... on DeliveryProgressEvent { cursor kind status entitlementId actorRole detail }
    ... on EntitlementSnapshot { cursor entitlement { id status } }
"""
LINK_READY = (
    """subscription ($after: String, $initial: Boolean! = false) {
  entitlementsReachingStatus(status: LINK_READY, after: $after, initialState: $initial) {
  ITEM } }"""
).replace("ITEM", ITEM)
PROGRESS = (
    """subscription ($delivery: ID!, $after: String, $initial: Boolean! = false) {
  deliveryProgress(deliveryId: $delivery, after: $after, initialState: $initial) { ITEM } }"""
).replace("ITEM", ITEM)
SUBMIT = """mutation ($input: DeliveryInput!) { deliverySubmit(input: $input) {
  __typename ... on DeliverySubmitted { delivery { id entitlements { id } } } } }"""
STEP = """mutation ($input: EntitlementStepInput!) { %s(input: $input) { __typename } }"""
LOWER = """mutation ($input: EntitlementQuantityInput!) {
  entitlementLowerQuantity(input: $input) { __typename } }"""


def ws_url(gateway: Gateway) -> str:
    return gateway.url.replace("http://", "ws://") + "/graphql"


def bearer(who: tuple[str, ...]) -> str:
    return f"Bearer {token_for(who[0], *who[1:])}"


class Chain:
    """The other parties of seed 004, calling a gateway over HTTP."""

    def __init__(self, gateway: Gateway) -> None:
        self.url = gateway.url

    async def call(self, query: str, variables: dict[str, Any], who: tuple[str, ...]) -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{self.url}/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": bearer(who)},
            )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def submit(self, lines: int = 1, school: str = "09QQ") -> tuple[str, list[str]]:
        start = today()
        line = {
            "productId": DIGITAL,
            "variant": "SCHOOL",
            "quantity": 500,
            "startDate": start.isoformat(),
            "activationUntilDate": (start + timedelta(days=60)).isoformat(),
            "licenceTerm": {"durationMonths": 12},
        }
        body = {
            "referenceId": f"e2e-{uuid.uuid4().hex}",
            "buyer": {"schoolId": school},
            "orderLines": [line] * lines,
        }
        answer = (await self.call(SUBMIT, {"input": body}, SHOP))["deliverySubmit"]
        assert answer["__typename"] == "DeliverySubmitted", answer
        return answer["delivery"]["id"], [e["id"] for e in answer["delivery"]["entitlements"]]

    async def step(self, mutation: str, entitlement_id: str, who: tuple[str, ...]) -> None:
        variables = {"input": {"entitlementId": entitlement_id, "referenceId": uuid.uuid4().hex}}
        answer = (await self.call(STEP % mutation, variables, who))[mutation]
        assert answer["__typename"] == "EntitlementChanged", answer

    async def lower(self, entitlement_id: str, quantity: int) -> None:
        variables = {
            "input": {
                "entitlementId": entitlement_id,
                "referenceId": uuid.uuid4().hex,
                "quantity": quantity,
            }
        }
        answer = (await self.call(LOWER, variables, SHOP))["entitlementLowerQuantity"]
        assert answer["__typename"] == "EntitlementChanged", answer


class Subscription:
    """A gql client subscribed over one websocket protocol."""

    def __init__(self, url: str, who: tuple[str, ...], protocol: str) -> None:
        self.transport = WebsocketsTransport(
            url=url,
            init_payload={"Authorization": bearer(who)},
            subprotocols=[protocol],
        )
        self.client = Client(transport=self.transport)
        self.session: Any = None
        self.results: Any = None

    async def open(self, query: str, variables: dict[str, Any]) -> Subscription:
        self.session = await self.client.connect_async()
        self.results = self.session.subscribe(GraphQLRequest(query, variable_values=variables))
        return self

    async def next(self) -> dict[str, Any]:
        data = await asyncio.wait_for(self.results.__anext__(), WAIT)
        (value,) = data.values()
        return value  # type: ignore[no-any-return]

    async def events(self, n: int) -> list[dict[str, Any]]:
        """The next n events, skipping initial-state items."""
        found: list[dict[str, Any]] = []
        while len(found) < n:
            item = await self.next()
            if item["__typename"] == "DeliveryProgressEvent":
                found.append(item)
        return found

    async def close(self) -> None:
        await self.results.aclose()
        await self.client.close_async()


async def subscribed(
    gateway: Gateway, who: tuple[str, ...], query: str, variables: dict[str, Any], protocol: str
) -> tuple[Subscription, list[dict[str, Any]]]:
    """Subscribe with initialState and wait for the state: then the subscription is
    registered, and every later change will reach it. Returns the state's items
    (read up to the first of them; the rest follow before any event)."""
    subscription = await Subscription(ws_url(gateway), who, protocol).open(
        query, {**variables, "initial": True}
    )
    first = await subscription.next()
    assert first["__typename"] == "EntitlementSnapshot", first
    return subscription, [first]


def positions(items: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [decode_event_cursor(i["cursor"]) for i in items]


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("live")
    gateway = start_gateway(f"sqlite+aiosqlite:///{folder / 'live.db'}", extra_env=LIVE_ENV)
    yield gateway
    stop_gateway(gateway)


# --- the portal's LINK_READY stream (done-when of issue #5) ---------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_portal_sees_every_link_ready_event_in_order_across_a_reconnect(
    live_gateway: Gateway, protocol: str
) -> None:
    chain = Chain(live_gateway)
    _delivery, (first, second, known) = await chain.submit(lines=3)
    for entitlement_id in (first, second, known):
        await chain.step("entitlementProvision", entitlement_id, PUBLISHER)
    await chain.step("entitlementLinkReady", known, PORTAL)  # so the state is not empty

    portal, _state = await subscribed(live_gateway, PORTAL, LINK_READY, {}, protocol)
    await chain.step("entitlementLinkReady", first, PORTAL)
    (seen,) = await portal.events(1)
    assert (seen["entitlementId"], seen["actorRole"]) == (first, "portal")
    await portal.close()  # the portal's connection drops

    await chain.step("entitlementLinkReady", first, LMS)
    await chain.step("entitlementLinkReady", second, PORTAL)

    resumed = await Subscription(ws_url(live_gateway), PORTAL, protocol).open(
        LINK_READY, {"after": seen["cursor"]}
    )
    missed = await resumed.events(2)
    assert [m["entitlementId"] for m in missed] == [first, second]
    await chain.step("entitlementLinkReady", second, LMS)
    (live,) = await resumed.events(1)
    assert live["entitlementId"] == second
    received = [seen, *missed, live]
    assert positions(received) == sorted(set(positions(received)))
    await resumed.close()


# --- a subscriber killed mid-stream ----------------------------------------------------------

CHILD = r"""
import asyncio, json, sys
import websockets

async def main(url, token, delivery):
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": token}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        query = ("subscription ($d: ID!) { deliveryProgress(deliveryId: $d, initialState: true)"
                 " { __typename ... on DeliveryProgressEvent { cursor detail } } }")
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": query, "variables": {"d": delivery}}}))
        while True:
            message = json.loads(await ws.recv())
            if message["type"] != "next":
                continue
            item = message["payload"]["data"]["deliveryProgress"]
            if item["__typename"] == "EntitlementSnapshot":
                print("READY", flush=True)
            else:
                print(json.dumps(item), flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_subscriber_killed_mid_stream_resumes_by_cursor_with_nothing_lost(
    live_gateway: Gateway,
) -> None:
    chain = Chain(live_gateway)
    delivery, (entitlement_id,) = await chain.submit()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        ws_url(live_gateway),
        bearer(SHOP),
        delivery,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), WAIT)).strip() == b"READY"
    processed: list[dict[str, Any]] = []
    quantities = list(range(499, 469, -1))  # 30 changes
    for number, quantity in enumerate(quantities):
        await chain.lower(entitlement_id, quantity)
        if number == 19:
            while len(processed) < 10:  # it is well into the stream: kill it
                line = await asyncio.wait_for(child.stdout.readline(), WAIT)
                processed.append(json.loads(line))
            child.kill()
            await child.wait()
    last = processed[-1]["cursor"]

    resumed = await Subscription(ws_url(live_gateway), SHOP, TRANSPORT_WS).open(
        PROGRESS, {"delivery": delivery, "after": last}
    )
    rest = await resumed.events(len(quantities) - len(processed))
    await resumed.close()
    everything = processed + rest
    assert [e["detail"]["quantity"] for e in everything] == quantities
    assert positions(everything) == sorted(set(positions(everything)))


# --- connections ------------------------------------------------------------------------------


async def until_closed(ws: Any, messages: list[Any]) -> tuple[int, str]:
    """Read (keeping what arrives) until the server closes; its close code and reason."""
    try:
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
    except websockets.ConnectionClosed as closed:
        frame = closed.rcvd
    if frame is None:
        return 1006, "closed without a close frame"
    return frame.code, frame.reason


async def _init(url: str, protocol: str, payload: dict[str, Any] | None) -> Any:
    ws = await websockets.connect(url, subprotocols=[protocol])
    message: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        message["payload"] = payload
    await ws.send(json.dumps(message))
    return ws


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "missing bearer token"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid token"),
        ({"token": token_for("no-such-supplier", "portal")}, "unknown supplier"),
    ],
)
async def test_graphql_transport_ws_refuses_a_bad_token_with_4403_and_the_reason(
    live_gateway: Gateway, payload: dict[str, Any] | None, reason: str
) -> None:
    ws = await _init(ws_url(live_gateway), TRANSPORT_WS, payload)
    messages: list[Any] = []
    code, said = await until_closed(ws, messages)
    assert messages == []
    assert code == 4403
    assert reason in said


async def test_graphql_ws_refuses_a_bad_token_with_connection_error(
    live_gateway: Gateway,
) -> None:
    ws = await _init(ws_url(live_gateway), LEGACY_WS, {})
    message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert message["type"] == "connection_error"
    assert "missing bearer token" in message["payload"]["message"]
    await until_closed(ws, [])


async def test_the_token_may_also_come_as_token_and_in_the_upgrade_header(
    live_gateway: Gateway,
) -> None:
    ws = await _init(ws_url(live_gateway), TRANSPORT_WS, {"token": bearer(PORTAL)[7:]})
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.close()
    ws = await websockets.connect(
        ws_url(live_gateway),
        subprotocols=[TRANSPORT_WS],
        additional_headers={"Authorization": bearer(PORTAL)},
    )
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.close()


async def test_idle_legacy_connections_get_keep_alive_messages(live_gateway: Gateway) -> None:
    ws = await _init(ws_url(live_gateway), LEGACY_WS, {"Authorization": bearer(PORTAL)})
    seen = [json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] for _ in range(3)]
    assert seen[0] == "connection_ack"
    assert "ka" in seen[1:]
    await ws.close()


async def test_transport_ws_ping_is_answered_with_pong(live_gateway: Gateway) -> None:
    # graphql-transport-ws keep-alive: the client pings, the server answers; the
    # server side relies on websocket ping frames (uvicorn), see live/transport.py.
    ws = await _init(ws_url(live_gateway), TRANSPORT_WS, {"Authorization": bearer(PORTAL)})
    assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
    await ws.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "pong"
    await ws.close()


async def test_a_slow_subscriber_is_closed_with_4008_and_resumes_by_cursor(
    live_gateway: Gateway,
) -> None:
    chain = Chain(live_gateway)
    ws = await _init(ws_url(live_gateway), TRANSPORT_WS, {"Authorization": bearer(SHOP)})
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    # Every event costs this subscriber several reads (nested fields), while the broker
    # puts a batch of 50 into its queue of 100 at once: it falls behind.
    heavy = """subscription { entitlementsReachingStatus(status: ENTITLED, initialState: true) {
        __typename ... on EntitlementSnapshot { cursor }
        ... on DeliveryProgressEvent { cursor entitlementId entitlement {
            history { kind status } recipients { state supplier { code name } }
            licences { id } product { name } school { name } } } } }"""
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": heavy}}))
    first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))  # the state: registered
    assert first["type"] == "next", first
    _delivery, ids = await chain.submit(lines=600)
    messages: list[Any] = []
    code, reason = await until_closed(ws, messages)
    received = [
        item["entitlementId"]
        for message in messages
        if message["type"] == "next"
        and (item := message["payload"]["data"]["entitlementsReachingStatus"])["__typename"]
        == "DeliveryProgressEvent"
    ]
    assert code == 4008
    assert "too slow" in reason
    assert "resume with after=" in reason
    cursor = reason.rsplit("after=", 1)[1]

    light = """subscription ($after: String) {
        entitlementsReachingStatus(status: ENTITLED, after: $after) {
        ... on DeliveryProgressEvent { entitlementId } } }"""
    resumed = await Subscription(ws_url(live_gateway), SHOP, TRANSPORT_WS).open(
        light, {"after": cursor}
    )
    rest: list[str] = []
    while set(ids) - set(received) - set(rest):
        rest.append((await resumed.next())["entitlementId"])
    await resumed.close()
    assert set(received) | set(rest) == set(ids)


async def test_stopping_the_gateway_closes_subscriptions_cleanly(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("stop")
    gateway = start_gateway(f"sqlite+aiosqlite:///{folder / 'stop.db'}", extra_env=LIVE_ENV)
    try:
        delivery, _ids = await Chain(gateway).submit()
        ws = await _init(ws_url(gateway), TRANSPORT_WS, {"Authorization": bearer(PORTAL)})
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        # Registered once its initial state has arrived: then SIGTERM.
        await _subscribe_raw(ws, "1", SHAPE_A, {"d": delivery})
        gateway.process.send_signal(signal.SIGTERM)
        code, _reason = await until_closed(ws, [])
        assert code == 1012  # service restart: reconnect and resume
        # uvicorn waits for open connections and the lifespan (the broker's stop) to
        # end, then re-raises the signal it caught: -SIGTERM is its clean exit.
        assert await asyncio.to_thread(gateway.process.wait, 20) == -signal.SIGTERM
    finally:
        stop_gateway(gateway)


# --- two gateway processes on PostgreSQL -----------------------------------------------------


@pytest.fixture(scope="module")
async def two_gateways() -> AsyncIterator[tuple[Gateway, Gateway]]:
    name, url = await _create_postgres_database()
    # A long poll: a change made through the other process can only arrive in time
    # through LISTEN/NOTIFY.
    env = {**LIVE_ENV, "KETENPOORT_LIVE_POLL_SECONDS": "30"}
    first = await asyncio.to_thread(start_gateway, url, extra_env=env)
    try:
        second = await asyncio.to_thread(start_gateway, url, demo=False, extra_env=env)
    except BaseException:
        stop_gateway(first)
        raise
    try:
        yield first, second
    finally:
        stop_gateway(first)
        stop_gateway(second)
        await _drop_postgres_database(name)


async def test_a_change_through_one_process_reaches_a_subscriber_of_the_other(
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, b = two_gateways
    chain_a = Chain(a)
    delivery, (entitlement_id,) = await chain_a.submit()
    watcher, _state = await subscribed(b, SHOP, PROGRESS, {"delivery": delivery}, TRANSPORT_WS)
    await chain_a.step("entitlementProvision", entitlement_id, PUBLISHER)
    (event,) = await watcher.events(1)
    assert (event["kind"], event["entitlementId"]) == ("ENTITLEMENT_PROVISIONED", entitlement_id)
    await watcher.close()


async def test_portal_link_ready_stream_across_processes_and_a_reconnect(
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, b = two_gateways
    chain_a, chain_b = Chain(a), Chain(b)
    _delivery, (first, second, known) = await chain_a.submit(lines=3)
    for entitlement_id in (first, second, known):
        await chain_b.step("entitlementProvision", entitlement_id, PUBLISHER)
    await chain_a.step("entitlementLinkReady", known, PORTAL)

    on_a, _state = await subscribed(a, PORTAL, LINK_READY, {}, TRANSPORT_WS)
    await chain_b.step("entitlementLinkReady", first, PORTAL)  # through the other process
    (seen,) = await on_a.events(1)
    assert seen["entitlementId"] == first
    await on_a.close()

    await chain_a.step("entitlementLinkReady", first, LMS)
    await chain_b.step("entitlementLinkReady", second, PORTAL)
    on_b = await Subscription(ws_url(b), PORTAL, LEGACY_WS).open(
        LINK_READY, {"after": seen["cursor"]}
    )
    missed = await on_b.events(2)
    await chain_a.step("entitlementLinkReady", second, LMS)
    (live,) = await on_b.events(1)
    await on_b.close()
    assert [m["entitlementId"] for m in [seen, *missed, live]] == [first, first, second, second]
    received = [seen, *missed, live]
    assert positions(received) == sorted(set(positions(received)))


# --- live subscriptions after the handoff (live/streams.py) ------------------------------------

SHAPE_A = """subscription ($d: ID!) { deliveryProgress(deliveryId: $d, initialState: true) {
    __typename ... on DeliveryProgressEvent { cursor kind } } }"""
SHAPE_B = """subscription ($d: ID!) { deliveryProgress(deliveryId: $d, initialState: true) {
    __typename ... on DeliveryProgressEvent { status entitlementId } } }"""


async def _next_of(ws: Any, wanted: set[str]) -> dict[str, Any]:
    """The next `next` message of one of the operations `wanted` (skipping the state)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert message["type"] in {"next", "pong"}, message
        if message["type"] != "next" or message["id"] not in wanted:
            continue
        (item,) = message["payload"]["data"].values()
        if item["__typename"] == "DeliveryProgressEvent":
            return message


async def _subscribe_raw(ws: Any, id_: str, query: str, variables: dict[str, Any]) -> None:
    payload = {"query": query, "variables": variables}
    await ws.send(json.dumps({"id": id_, "type": "subscribe", "payload": payload}))
    first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))  # the state: registered
    assert first["type"] == "next", first
    assert first["id"] == id_, first


async def test_one_event_reaches_each_subscription_in_its_own_shape_and_id(
    live_gateway: Gateway,
) -> None:
    """The event is rendered once per (operation, variables, caller) and shared: two
    operations on one connection, and the same operation on a second connection,
    each get exactly what they asked for under their own id."""
    chain = Chain(live_gateway)
    delivery, (entitlement,) = await chain.submit()
    one = await _init(ws_url(live_gateway), TRANSPORT_WS, {"Authorization": bearer(SHOP)})
    two = await _init(ws_url(live_gateway), TRANSPORT_WS, {"Authorization": bearer(SHOP)})
    for ws in (one, two):
        assert json.loads(await ws.recv())["type"] == "connection_ack"
    await _subscribe_raw(one, "a", SHAPE_A, {"d": delivery})
    await _subscribe_raw(one, "b", SHAPE_B, {"d": delivery})
    await _subscribe_raw(two, "a", SHAPE_A, {"d": delivery})
    await chain.lower(entitlement, 499)
    first = await _next_of(one, {"a", "b"})
    second = await _next_of(one, {"a", "b"} - {first["id"]})
    by_id = {m["id"]: m for m in (first, second)}
    a = by_id["a"]["payload"]["data"]["deliveryProgress"]
    b = by_id["b"]["payload"]["data"]["deliveryProgress"]
    assert set(a) == {"__typename", "cursor", "kind"}
    assert a["kind"] == "ENTITLEMENT_QUANTITY_LOWERED"
    assert set(b) == {"__typename", "status", "entitlementId"}
    assert b["entitlementId"] == entitlement
    other = await _next_of(two, {"a"})
    assert other["payload"] == by_id["a"]["payload"]
    await one.close()
    await two.close()


async def test_complete_ends_a_live_subscription_and_frees_its_id(live_gateway: Gateway) -> None:
    chain = Chain(live_gateway)
    delivery, (entitlement,) = await chain.submit()
    ws = await _init(ws_url(live_gateway), TRANSPORT_WS, {"Authorization": bearer(SHOP)})
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await _subscribe_raw(ws, "1", SHAPE_A, {"d": delivery})
    await ws.send(json.dumps({"id": "1", "type": "complete"}))
    # The id is free again at once (a duplicate would be closed with 4409) ...
    await _subscribe_raw(ws, "1", SHAPE_B, {"d": delivery})
    await chain.lower(entitlement, 498)
    # ... and only the new subscription receives the event.
    message = await _next_of(ws, {"1"})
    assert set(message["payload"]["data"]["deliveryProgress"]) == {
        "__typename",
        "status",
        "entitlementId",
    }
    await ws.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "pong"  # nothing else
    await ws.close()


async def test_a_token_that_expires_during_a_live_subscription_closes_it_with_4401(
    live_gateway: Gateway,
) -> None:
    """Whether events flow or not: the connection is closed at the token's expiry,
    and nothing after it is sent."""
    chain = Chain(live_gateway)
    delivery, (entitlement,) = await chain.submit()
    short = token_for(*SHOP, lifetime=timedelta(seconds=5))
    ws = await _init(ws_url(live_gateway), TRANSPORT_WS, {"Authorization": f"Bearer {short}"})
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await _subscribe_raw(ws, "1", SHAPE_A, {"d": delivery})
    messages: list[Any] = []
    code, reason = await until_closed(ws, messages)
    assert code == 4401
    assert "token expired" in reason
    await chain.lower(entitlement, 497)  # after the close: it reaches nobody
    assert not [m for m in messages if m["type"] == "next"]
    (told,) = [m for m in messages if m["type"] == "error"]
    assert "resume with after=" in told["payload"][0]["message"]
