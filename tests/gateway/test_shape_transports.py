"""The shape and input checks on every transport of a real gateway process (uvicorn):
HTTP and both websocket protocols run the schema's rules, and /healthz answers
while a slow request runs until its deadline cuts it off (issue 12.1, 12.11).

Timeouts only keep a broken test from hanging; nothing here asserts speed."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from resolvers.clock import today
from tests.api.test_hostile_queries import fragment_attack
from tests.conftest import BACKENDS, _create_postgres_database, _drop_postgres_database
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.e2e.test_subscriptions import DIGITAL, LEGACY_WS, SHOP, TRANSPORT_WS, bearer, ws_url
from tests.e2e.test_websocket_protocols import acknowledged, errors_in, first_of, operation

DEADLINE = 2.0
WAIT = 60


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    database = tmp_path_factory.mktemp("shape") / "shape.db"
    started = start_gateway(
        f"sqlite+aiosqlite:///{database}",
        extra_env={
            "KETENPOORT_REQUEST_TIMEOUT_SECONDS": str(DEADLINE),
            "KETENPOORT_RATE_LIMIT_PER_SECOND": "0",
        },
    )
    yield started, database
    stop_gateway(started)


NUL_QUERY = "query ($v: String!) { organisation(identifier: {value: $v}) { __typename } }"
RESUME = """subscription ($d: ID!, $a: String) {
  deliveryProgress(deliveryId: $d, after: $a) { __typename } }"""
COERCION_QUERY = "query ($n: Int) { products(first: $n) { nodes { id } } }"


async def post(gateway: Gateway, body: dict[str, Any], who: tuple[str, ...] = SHOP) -> Any:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.post(f"{gateway.url}/graphql", json=body,
                                     headers={"Authorization": bearer(who)})
    return response.json()


async def test_http_refuses_the_attack_and_bad_input(gateway: tuple[Gateway, Path]) -> None:
    started, _ = gateway
    attack = await post(started, {"query": fragment_attack(30)})
    assert attack["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    nul = await post(started, {"query": NUL_QUERY, "variables": {"v": "09QQ\x00"}})
    assert nul["errors"][0]["extensions"]["reason"] == "nul"
    # The compiled reads' refusal mark (compiler/marks.py) cannot be written by anyone.
    mark = await post(started, {"query": NUL_QUERY,
                                "variables": {"v": "\u0001ketenpoort:refused:0\u0001"}})
    assert mark["errors"][0]["extensions"]["reason"] == "control"
    literal = await post(started, {"query": NUL_QUERY.replace("($v: String!) ", "")
                                   .replace("$v", '"09\\u0007QQ"')})
    assert literal["errors"][0]["extensions"]["reason"] == "control"
    fine = await post(started, {"query": NUL_QUERY, "variables": {"v": "09QQ\t\r\n"}})
    assert "reason" not in fine.get("errors", [{}])[0].get("extensions", {})
    coercion = await post(started, {"query": COERCION_QUERY, "variables": {"n": "ten"}})
    assert coercion["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Int cannot represent" in coercion["errors"][0]["message"]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websockets_refuse_the_attack_and_bad_input(
    gateway: tuple[Gateway, Path], protocol: str
) -> None:
    started, _ = gateway
    ws = await acknowledged(ws_url(started), protocol, SHOP)
    try:
        await operation(ws, "attack", fragment_attack(30), protocol)
        attack = errors_in([await first_of(ws, "attack")])
        assert attack[0]["extensions"]["code"] == "QUERY_TOO_COSTLY", attack
        await operation(ws, "nul", NUL_QUERY, protocol, v="09QQ\x00")
        nul = errors_in([await first_of(ws, "nul")])
        assert nul[0]["extensions"]["reason"] == "nul", nul
        await operation(ws, "control", NUL_QUERY, protocol, v="09\u0001QQ")
        control = errors_in([await first_of(ws, "control")])
        assert control[0]["extensions"]["reason"] == "control", control
        await operation(ws, "coercion", COERCION_QUERY, protocol, n="ten")
        coercion = errors_in([await first_of(ws, "coercion")])
        assert coercion[0]["extensions"]["code"] == "BAD_USER_INPUT", coercion
        assert "Int cannot represent" in coercion[0]["message"]
        # A subscription's cursor too.
        cursor = base64.urlsafe_b64encode(b"ev:1:" + b"9" * 25).decode()
        await operation(ws, "resume", RESUME, protocol, d="1", a=cursor)
        resume = errors_in([await first_of(ws, "resume")])
        assert resume[0].get("extensions", {}).get("reason") == "out_of_range", resume
    finally:
        await ws.close()


SUBMIT = """mutation ($input: DeliveryInput!) { deliverySubmit(input: $input) { __typename } }"""


def delivery() -> dict[str, Any]:
    start = today()
    line = {
        "productId": DIGITAL,
        "variant": "SCHOOL",
        "quantity": 5,
        "startDate": start.isoformat(),
        "activationUntilDate": (start + timedelta(days=60)).isoformat(),
        "licenceTerm": {"durationMonths": 12},
    }
    return {"referenceId": f"shape-{uuid.uuid4().hex}", "buyer": {"schoolId": "09QQ"},
            "orderLines": [line]}


@pytest.fixture(scope="module")
async def postgres_gateway() -> AsyncIterator[tuple[Gateway, str]]:
    if "postgresql" not in BACKENDS:
        pytest.skip("a slow statement held on PostgreSQL")
    name, url = await _create_postgres_database()
    env = {"KETENPOORT_REQUEST_TIMEOUT_SECONDS": str(DEADLINE),
           "KETENPOORT_RATE_LIMIT_PER_SECOND": "0"}
    try:
        started = await asyncio.to_thread(start_gateway, url, extra_env=env)
        try:
            yield started, url
        finally:
            stop_gateway(started)
    finally:
        await _drop_postgres_database(name)


async def test_healthz_answers_while_a_slow_request_runs_until_its_deadline(
    postgres_gateway: tuple[Gateway, str],
) -> None:
    import asyncpg

    started, url = postgres_gateway
    # The test locks the delivery table against writes, so the gateway's submit
    # waits in PostgreSQL (its event loop free) until the lock is released.
    holder = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        locked = holder.transaction()
        await locked.start()
        await holder.execute("LOCK TABLE delivery IN EXCLUSIVE MODE")
        body = delivery()
        slow = asyncio.create_task(post(started, {"query": SUBMIT, "variables": {"input": body}}))
        answered = 0
        bound = time.monotonic() + WAIT
        async with httpx.AsyncClient(timeout=WAIT) as client:
            # /healthz answers all the while the submit waits, until its deadline
            # answers it (the lock still held: cut off, not finished).
            while not slow.done():
                assert time.monotonic() < bound, "the deadline never cut the request off"
                health = await client.get(f"{started.url}/healthz")
                assert health.status_code == 200, health.text
                answered += 1
        assert answered >= 1
        answer = slow.result()
        assert answer["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT", answer
        assert answer.get("data") is None
        await locked.rollback()
        # No half write: the cut-off submit left no delivery behind.
        written = await holder.fetchval(
            "SELECT count(*) FROM delivery WHERE reference_id = $1", body["referenceId"])
        assert written == 0
    finally:
        await holder.close()
