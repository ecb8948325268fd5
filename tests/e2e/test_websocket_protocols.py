"""Our own graphql-transport-ws and graphql-ws (live/transport.py), met by a raw
websocket client on a real uvicorn process: the protocols' rules and close codes,
every operation held to the HTTP limits (rate limit, token expiry), queries over the
legacy protocol, a revocation told on an open subscription.

Timeouts only keep a broken test from hanging; nothing here asserts speed, and
nothing waits a fixed time: each test waits for the message or close it expects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import websockets

from tests.conftest import token_for
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.e2e.test_subscriptions import (
    LEGACY_WS,
    LIVE_ENV,
    PORTAL,
    SHOP,
    TRANSPORT_WS,
    WAIT,
    Chain,
    _init,
    bearer,
    until_closed,
    ws_url,
)
from tests.e2e.test_subscriptions import live_gateway as live_gateway  # noqa: F401

PRODUCTS = "{ products(first: 1) { totalCount } }"
INIT = {"type": "connection_init", "payload": {"Authorization": bearer(PORTAL)}}
OPERATOR = ("operator", "operator")


async def receive(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))  # type: ignore[no-any-return]


async def acknowledged(url: str, protocol: str, who: tuple[str, ...] = PORTAL, **kw: Any) -> Any:
    token = kw.get("token") or bearer(who)
    ws = await _init(url, protocol, {"Authorization": token})
    assert (await receive(ws))["type"] == "connection_ack"
    return ws


async def operation(ws: Any, id_: str, query: str, protocol: str, **variables: Any) -> None:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    payload = {"query": query, "variables": variables}
    await ws.send(json.dumps({"id": id_, "type": kind, "payload": payload}))


async def first_of(ws: Any, id_: str) -> dict[str, Any]:
    """The next message of one operation (skipping keep-alives and others)."""
    while True:
        message = await receive(ws)
        if message.get("id") == id_:
            return message


def errors_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The GraphQL errors an operation's messages carry, in both protocols' shapes."""
    found: list[dict[str, Any]] = []
    for message in messages:
        payload = message.get("payload")
        if message["type"] == "error":
            found += payload if isinstance(payload, list) else [payload]
        elif isinstance(payload, dict):
            found += payload.get("errors") or []
    return found


async def answers(ws: Any, id_: str) -> list[dict[str, Any]]:
    """The messages of one operation up to its end (complete or error), skipping
    keep-alives."""
    found: list[dict[str, Any]] = []
    while True:
        message = await receive(ws)
        if message.get("id") != id_:
            continue
        found.append(message)
        if message["type"] in {"complete", "error"}:
            return found


# --- graphql-transport-ws: the protocol's rules ----------------------------------------------


@pytest.mark.parametrize(
    ("messages", "code", "reason"),
    [
        ([{"type": "subscribe", "id": "1", "payload": {"query": PRODUCTS}}], 4401, "Unauthorized"),
        ([INIT, INIT], 4429, "Too many"),
        (["not json"], 4400, "valid JSON"),
        ([{"id": "1"}], 4400, "string `type`"),
        ([{"type": "nonsense"}], 4400, "Unknown message type"),
        ([{"type": "connection_init", "payload": "x"}], 4403, "JSON object"),
        (
            [INIT, {"type": "subscribe", "id": "x" * 129, "payload": {"query": PRODUCTS}}],
            4400,
            "1 to 128",
        ),
        ([INIT, {"type": "subscribe", "id": "1", "payload": {"query": 1}}], 4400, "query"),
        (
            [
                INIT,
                {"type": "subscribe", "id": "1", "payload": {"query": PRODUCTS, "variables": []}},
            ],
            4400,
            "variables",
        ),
    ],
    ids=[
        "subscribe-first",
        "two-inits",
        "not-json",
        "no-type",
        "unknown",
        "bad-payload",
        "long-id",
        "query-not-text",
        "variables-not-object",
    ],
)
async def test_graphql_transport_ws_closes_on_what_the_protocol_forbids(
    live_gateway: Gateway,  # noqa: F811
    messages: list[Any],
    code: int,
    reason: str,
) -> None:
    ws = await websockets.connect(ws_url(live_gateway), subprotocols=[TRANSPORT_WS])
    for message in messages:
        await ws.send(message if isinstance(message, str) else json.dumps(message))
    got, said = await until_closed(ws, [])
    assert (got, reason in said) == (code, True), said


async def test_an_operation_id_in_use_closes_with_4409(live_gateway: Gateway) -> None:  # noqa: F811
    ws = await acknowledged(ws_url(live_gateway), TRANSPORT_WS)
    live = "subscription { entitlementsReachingStatus(status: BLOCKED) { __typename } }"
    await operation(ws, "same", live, TRANSPORT_WS)
    await operation(ws, "same", live, TRANSPORT_WS)
    code, reason = await until_closed(ws, [])
    assert code == 4409
    assert "same" in reason


async def test_no_subprotocol_is_closed_with_4406(live_gateway: Gateway) -> None:  # noqa: F811
    ws = await websockets.connect(ws_url(live_gateway))
    code, _reason = await until_closed(ws, [])
    assert code == 4406


async def test_a_connection_without_connection_init_is_closed_with_4408(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("init")
    gateway = start_gateway(
        f"sqlite+aiosqlite:///{folder / 'init.db'}",
        extra_env={**LIVE_ENV, "KETENPOORT_WS_INIT_TIMEOUT_SECONDS": "1"},
    )
    try:
        ws = await websockets.connect(ws_url(gateway), subprotocols=[TRANSPORT_WS])
        code, reason = await until_closed(ws, [])
        assert code == 4408
        assert "timeout" in reason
    finally:
        stop_gateway(gateway)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_queries_and_mutations_are_answered_over_both_protocols(
    live_gateway: Gateway,  # noqa: F811
    protocol: str,
) -> None:
    """Issue 12.15: the legacy protocol answered a query with a masked error."""
    ws = await acknowledged(ws_url(live_gateway), protocol)
    await operation(ws, "q", PRODUCTS, protocol)
    first, last = await answers(ws, "q")
    assert first["type"] == ("next" if protocol == TRANSPORT_WS else "data")
    assert first["payload"]["data"]["products"]["totalCount"] > 0
    assert last["type"] == "complete"
    # A wrong argument is named, not masked.
    await operation(ws, "bad", "{ products(first: -1) { totalCount } }", protocol)
    messages = await answers(ws, "bad")
    text = json.dumps(messages)
    assert "Unexpected error" not in text
    assert "first" in text
    # A document that does not validate is an error naming the problem.
    await operation(ws, "invalid", "{ products { nonsense } }", protocol)
    messages = await answers(ws, "invalid")
    assert messages[-1]["type"] in {"error", "complete"}
    assert "nonsense" in json.dumps(messages)
    await ws.close()


async def test_a_message_larger_than_the_body_limit_closes_with_4400(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("size")
    gateway = start_gateway(
        f"sqlite+aiosqlite:///{folder / 'size.db'}",
        extra_env={**LIVE_ENV, "KETENPOORT_MAX_BODY_BYTES": "4096"},
    )
    try:
        ws = await acknowledged(ws_url(gateway), TRANSPORT_WS)
        padding = "#" + "x" * 5000 + "\n"
        await operation(ws, "big", padding + PRODUCTS, TRANSPORT_WS)
        code, reason = await until_closed(ws, [])
        assert code == 4400
        assert "larger than 4096 bytes" in reason
    finally:
        stop_gateway(gateway)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_too_many_operations_on_one_connection_are_refused(
    tmp_path_factory: pytest.TempPathFactory, protocol: str
) -> None:
    folder = tmp_path_factory.mktemp("ops")
    gateway = start_gateway(
        f"sqlite+aiosqlite:///{folder / 'ops.db'}",
        extra_env={**LIVE_ENV, "KETENPOORT_WS_MAX_OPERATIONS": "2"},
    )
    try:
        ws = await acknowledged(ws_url(gateway), protocol)
        live = "subscription { entitlementsReachingStatus(status: BLOCKED) { __typename } }"
        for id_ in ("1", "2", "3"):
            await operation(ws, id_, live, protocol)
        (refused,) = await answers(ws, "3")
        assert refused["type"] == "error"
        assert "at most 2 operations" in json.dumps(refused)
        await ws.close()
    finally:
        stop_gateway(gateway)


# --- every operation obeys the HTTP limits (issue 13.6) -------------------------------------


@pytest.fixture(scope="module")
def limited_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("limited")
    gateway = start_gateway(
        f"sqlite+aiosqlite:///{folder / 'limited.db'}",
        extra_env={
            **LIVE_ENV,
            "KETENPOORT_RATE_LIMIT_PER_SECOND": "1",
            "KETENPOORT_RATE_LIMIT_BURST": "5",
        },
    )
    yield gateway
    stop_gateway(gateway)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_the_rate_limit_applies_to_every_operation_on_a_socket(
    limited_gateway: Gateway, protocol: str
) -> None:
    # A supplier of its own per protocol: each has its own bucket.
    who = OPERATOR if protocol == TRANSPORT_WS else SHOP
    ws = await acknowledged(ws_url(limited_gateway), protocol, who=who)
    count = 40
    for n in range(count):
        await operation(ws, str(n), PRODUCTS, protocol)
    finished: dict[str, list[dict[str, Any]]] = {}
    pending: dict[str, list[dict[str, Any]]] = {}
    while len(finished) < count:  # they run at once: messages arrive interleaved
        message = await receive(ws)
        if "id" not in message:
            continue
        pending.setdefault(message["id"], []).append(message)
        if message["type"] in {"complete", "error"}:
            finished[message["id"]] = pending.pop(message["id"])
    codes: list[str] = []
    for n in range(count):
        errors = errors_in(finished[str(n)])
        codes.append(errors[0]["extensions"]["code"] if errors else "OK")
    assert codes.count("RATE_LIMITED") >= count // 2, codes  # a burst of 5, then 1 a second
    assert "OK" in codes
    await ws.close()


async def test_an_idle_connection_is_closed_with_4401_when_its_token_expires(
    live_gateway: Gateway,  # noqa: F811
) -> None:
    """No events flow: the connection is closed at the token's expiry all the same,
    and each open subscription is told where to resume first."""
    short = f"Bearer {token_for(*PORTAL, lifetime=timedelta(seconds=3))}"
    ws = await acknowledged(ws_url(live_gateway), TRANSPORT_WS, token=short)
    idle = "subscription { entitlementsReachingStatus(status: BLOCKED) { __typename } }"
    await operation(ws, "idle", idle, TRANSPORT_WS)
    messages: list[Any] = []
    code, reason = await until_closed(ws, messages)
    assert code == 4401
    assert "token expired" in reason
    (told,) = [m for m in messages if m.get("id") == "idle"]
    assert told["type"] == "error"
    assert told["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "after=" in told["payload"][0]["message"]


async def test_an_operation_with_an_expired_token_is_not_run(
    live_gateway: Gateway,  # noqa: F811
) -> None:
    """A token past its expiry (still within the verifier's clock leeway) is
    accepted at connection_init, but no operation runs: the connection is closed
    with 4401 at once."""
    expired = f"Bearer {token_for(*SHOP, lifetime=timedelta(seconds=-5))}"
    ws = await _init(ws_url(live_gateway), TRANSPORT_WS, {"Authorization": expired})
    await operation(ws, "late", PRODUCTS, TRANSPORT_WS)
    messages: list[Any] = []
    code, _reason = await until_closed(ws, messages)
    assert code == 4401
    assert not [m for m in messages if m["type"] == "next"]


# --- a revocation on an open subscription (issue 13.4) --------------------------------------

EXCHANGE = """mutation ($input: DataExchangeInput!) { %s(input: $input) { __typename } }"""
PORTAL_ENTITLEMENTS = {
    "school": {"value": "104A158"},
    "supplierCode": "demo-portal",
    "role": "PORTAL",
    "dataType": "ENTITLEMENTS",
}
PROGRESS = """subscription ($d: ID!) { deliveryProgress(deliveryId: $d, initialState: true) {
    __typename ... on DeliveryProgressEvent { cursor } ... on EntitlementSnapshot { cursor } } }"""


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_revoked_subscriber_is_told_consent_required_over_the_socket(
    live_gateway: Gateway,  # noqa: F811
    protocol: str,
) -> None:
    chain = Chain(live_gateway)
    delivery, (entitlement,) = await chain.submit(school="104A158")
    ws = await acknowledged(ws_url(live_gateway), protocol)
    await operation(ws, "p", PROGRESS, protocol, d=delivery)
    await first_of(ws, "p")  # the state: registered
    await chain.lower(entitlement, 499)
    await chain.call(EXCHANGE % "dataExchangeRevoke", {"input": PORTAL_ENTITLEMENTS}, OPERATOR)
    try:
        messages = await answers(ws, "p")
        (error,) = errors_in(messages)
        assert error["extensions"]["code"] == "CONSENT_REQUIRED"
        assert error["extensions"]["statusCode"] == 4
        assert error["extensions"]["school"] == "104A158"
        cursors = [
            m["payload"]["data"]["deliveryProgress"]["cursor"]
            for m in messages
            if m["type"] in {"next", "data"} and m["payload"].get("data")
        ]
        assert error["extensions"]["resume"] == cursors[-1]  # the 499 event, then the end
    finally:
        await chain.call(
            EXCHANGE % "dataExchangeActivate", {"input": PORTAL_ENTITLEMENTS}, OPERATOR
        )
        await ws.close()
