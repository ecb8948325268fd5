"""Real processes, real signals, a real reverse proxy (issue 17.5 and 17.7).

* SIGTERM to a uvicorn gateway in the middle of a load of deliveries: a live
  subscriber is closed with 1012 and the cursor to resume from, resumes on the
  other gateway and misses nothing; no delivery whose request got no answer was
  half written; the process exits cleanly.
* Two gateways behind HAProxy (Debian's package, on loopback): requests spread
  over both, a websocket through the proxy receives events caused through either
  gateway, the rate limit in Redis holds across both, and when one gateway is
  killed the clients carry on through the other.

PostgreSQL only (two processes share one database). Bounds only guard a hang.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from db.pagination import decode_event_cursor
from db.pg import connect_arguments
from tests.conftest import BACKENDS, IN_CI, _create_postgres_database, _drop_postgres_database
from tests.e2e.conftest import Gateway, free_port, start_gateway, stop_gateway
from tests.e2e.test_subscriptions import (
    LIVE_ENV,
    SHOP,
    TRANSPORT_WS,
    WAIT,
    Chain,
    _init,
    bearer,
    until_closed,
)
from tests.ops.conftest import REDIS_URL

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

ENTITLED = """subscription ($after: String) {
  entitlementsReachingStatus(status: ENTITLED, after: $after) {
    ... on DeliveryProgressEvent { cursor entitlementId } } }"""


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL backend not selected")
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


async def subscribe(url: str, after: str | None = None) -> Any:
    ws = await _init(url, TRANSPORT_WS, {"Authorization": bearer(SHOP)})
    assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
    payload = {"query": ENTITLED, "variables": {"after": after}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


def items(messages: list[Any]) -> list[dict[str, Any]]:
    return [
        m["payload"]["data"]["entitlementsReachingStatus"]
        for m in messages
        if m.get("type") == "next"
    ]


async def receive_until(ws: Any, wanted: set[str], got: list[dict[str, Any]]) -> None:
    """Read `next` messages until every id in `wanted` has arrived (bounded)."""
    async with asyncio.timeout(WAIT):
        while wanted - {i["entitlementId"] for i in got}:
            got.extend(items([json.loads(await ws.recv())]))


async def delivery_rows(url: str, references: list[str]) -> dict[str, tuple[int, int]]:
    """Per delivery reference: (entitlements, their ENTITLED events) in the database."""
    connection = await asyncpg.connect(**connect_arguments(url))
    try:
        rows = await connection.fetch(
            """SELECT d.reference_id, count(DISTINCT e.id) AS entitlements,
                      count(DISTINCT ev.id) AS events
               FROM delivery d
               LEFT JOIN entitlement e ON e.delivery_id = d.id
               LEFT JOIN event ev ON ev.entitlement_id = e.id AND ev.kind = 'ENTITLEMENT_CREATED'
               WHERE d.reference_id = ANY($1::text[])
               GROUP BY d.reference_id""",
            references,
        )
    finally:
        await connection.close()
    return {r["reference_id"]: (r["entitlements"], r["events"]) for r in rows}


async def test_sigterm_mid_load_answers_or_leaves_nothing_and_subscribers_resume(
    database_url: str,
) -> None:
    env = {**LIVE_ENV, "KETENPOORT_SHUTDOWN_GRACE_SECONDS": "20"}
    a = await asyncio.to_thread(start_gateway, database_url, extra_env=env)
    b = await asyncio.to_thread(start_gateway, database_url, demo=False, extra_env=env)
    try:
        chain_a = Chain(a)
        ws = await subscribe(a.url.replace("http", "ws") + "/graphql")
        received: list[dict[str, Any]] = []
        _marker, marker_ids = await chain_a.submit()  # registered once this arrives
        await receive_until(ws, set(marker_ids), received)

        answered: dict[str, list[str]] = {}
        unanswered: list[str] = []
        stop = asyncio.Event()
        enough = asyncio.Event()  # a dozen answered: the load is well under way

        async def load() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                while not stop.is_set():
                    reference = f"sigterm-{uuid.uuid4().hex}"
                    body = _delivery(reference)
                    try:
                        response = await client.post(
                            f"{a.url}/graphql", json=body, headers={"Authorization": bearer(SHOP)}
                        )
                        answer = response.json()["data"]["deliverySubmit"]
                        answered[reference] = [
                            e["id"] for e in answer["delivery"]["entitlements"]
                        ]
                        if len(answered) >= 12:
                            enough.set()
                    except (httpx.HTTPError, KeyError, TypeError, ValueError):
                        unanswered.append(reference)
                        return

        loaders = [asyncio.create_task(load()) for _ in range(4)]
        await asyncio.wait_for(enough.wait(), WAIT)
        a.process.send_signal(signal.SIGTERM)
        messages: list[Any] = []
        code, reason = await until_closed(ws, messages)
        received.extend(items(messages))
        assert code == 1012, reason
        assert reason.startswith("gateway restarting; resume with after="), reason
        cursor = reason.rsplit("after=", 1)[1]
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*loaders)  # each ends at its first unanswered request
        stop.set()
        assert await asyncio.to_thread(a.process.wait, 60) == -signal.SIGTERM

        # No half writes: a delivery is in the database whole (3 entitlements, each
        # with its event) or not at all; every answered one is there.
        rows = await delivery_rows(database_url, [*answered, *unanswered])
        for reference, (entitlements, events) in rows.items():
            assert (entitlements, events) == (3, 3), reference
        assert set(answered) <= set(rows)

        # The subscriber resumes on the other gateway from the cursor: every
        # entitlement written (answered or not) arrives exactly once, none before.
        written = {e for ids in answered.values() for e in ids}
        written |= await _entitlement_ids(database_url, [r for r in unanswered if r in rows])
        resumed = await subscribe(b.url.replace("http", "ws") + "/graphql", after=cursor)
        later: list[dict[str, Any]] = []
        await receive_until(resumed, written - {i["entitlementId"] for i in received}, later)
        await resumed.close()
        before = [i for i in received if i["entitlementId"] not in marker_ids]
        seen = [i["entitlementId"] for i in before + later]
        assert set(seen) >= written
        assert len(seen) == len(set(seen))  # no duplicate across the restart
        assert all(decode_event_cursor(i["cursor"]) > decode_event_cursor(cursor) for i in later)
    finally:
        stop_gateway(a)
        stop_gateway(b)


def _delivery(reference: str) -> dict[str, Any]:
    from datetime import timedelta

    from resolvers.clock import today
    from tests.e2e.test_subscriptions import DIGITAL, SUBMIT

    start = today()
    line = {
        "productId": DIGITAL,
        "variant": "SCHOOL",
        "quantity": 5,
        "startDate": start.isoformat(),
        "activationUntilDate": (start + timedelta(days=60)).isoformat(),
        "licenceTerm": {"durationMonths": 12},
    }
    body = {"referenceId": reference, "buyer": {"schoolId": "09QQ"}, "orderLines": [line] * 3}
    return {"query": SUBMIT, "variables": {"input": body}}


async def _entitlement_ids(url: str, references: list[str]) -> set[str]:
    if not references:
        return set()
    connection = await asyncpg.connect(**connect_arguments(url))
    try:
        rows = await connection.fetch(
            "SELECT e.id FROM entitlement e JOIN delivery d ON d.id = e.delivery_id "
            "WHERE d.reference_id = ANY($1::text[])",
            references,
        )
    finally:
        await connection.close()
    return {str(r["id"]) for r in rows}


# --- several gateways behind HAProxy ----------------------------------------------------------

HAPROXY_CONFIG = """
global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend gateway
    bind 127.0.0.1:{port}
    default_backend gateways
backend gateways
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
{servers}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if found is None:
        message = "haproxy is not installed (apt-get install haproxy; .ci/run does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def start_haproxy(folder: Any, gateways: list[Gateway]) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    servers = "\n".join(
        f"    server g{i} {g.url.removeprefix('http://')} check" for i, g in enumerate(gateways)
    )
    config = folder / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers))
    binary = haproxy_binary()
    subprocess.run([binary, "-c", "-q", "-f", str(config)], check=True)
    process = subprocess.Popen([binary, "-db", "-f", str(config)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("haproxy did not answer in 90 s")


def served_by(gateway: Gateway, operation: str) -> float:
    from tests.ops.test_observability import value

    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    return value(text, "ketenpoort_requests_total", operation=operation)


async def test_two_gateways_behind_haproxy(database_url: str, tmp_path: Any) -> None:
    prefix = f"ketenpoort-test-{uuid.uuid4().hex[:12]}"
    env = {
        **LIVE_ENV,
        "KETENPOORT_LIVE_POLL_SECONDS": "30",  # across gateways only NOTIFY is quick enough
        "KETENPOORT_REDIS_URL": REDIS_URL,
        "KETENPOORT_REDIS_KEY_PREFIX": prefix,
        "KETENPOORT_RATE_LIMIT_PER_SECOND": "0.001",
        "KETENPOORT_RATE_LIMIT_BURST": "30",
    }
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    a = await asyncio.to_thread(start_gateway, database_url, extra_env=env)
    b = await asyncio.to_thread(start_gateway, database_url, demo=False, extra_env=env)
    proxy = None
    try:
        url, proxy = await asyncio.to_thread(start_haproxy, tmp_path, [a, b])
        headers = {"Authorization": bearer(SHOP)}
        async with httpx.AsyncClient(timeout=30) as client:
            # HTTP is spread over both gateways.
            spread = {"query": "query Spread { products(first: 1) { nodes { productId } } }"}
            for _ in range(8):
                response = await client.post(f"{url}/graphql", json=spread, headers=headers)
                assert response.status_code == 200
            counts = [served_by(g, "Spread") for g in (a, b)]
            assert sum(counts) == 8, counts
            assert min(counts) >= 1, counts

            # A websocket through the proxy receives events caused through either gateway.
            ws = await subscribe(url.replace("http", "ws") + "/graphql")
            got: list[dict[str, Any]] = []
            _d, first = await Chain(a).submit()
            await receive_until(ws, set(first), got)
            _d, second = await Chain(b).submit()
            await receive_until(ws, set(second), got)
            last_cursor = got[-1]["cursor"]

            # The rate limit, in Redis, holds across both: 30 requests in all.
            dashboard = {"Authorization": bearer(("demo-dashboard", "dashboard"))}
            statuses = [
                (await client.post(f"{url}/graphql", json=spread, headers=dashboard)).status_code
                for _ in range(36)
            ]
            assert statuses.count(200) == 30, statuses
            assert statuses.count(429) == 6, statuses

            # One gateway killed: the clients carry on through the other.
            a.process.kill()
            a.process.wait(10)
            for _ in range(8):
                response = await client.post(f"{url}/graphql", json=spread, headers=headers)
                assert response.status_code == 200
            _d, third = await Chain(b).submit()
            try:  # the websocket may have been on the killed gateway: resume by cursor
                await receive_until(ws, set(third), got)
            except Exception:
                await ws.close()
                ws = await subscribe(url.replace("http", "ws") + "/graphql", after=last_cursor)
                await receive_until(ws, set(third), got)
            await ws.close()
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        stop_gateway(a)
        stop_gateway(b)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
