"""Two real gateway processes (uvicorn) on one PostgreSQL database share the
endpoints: every event reaches every endpoint once while both run; after one is
killed with SIGKILL in the middle of a batch, the other takes the endpoint over
when the lease expires and resumes from the stored cursor, sending the batch
that was in flight again with the same event ids."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from db import push as store
from db.engine import create_sessionmaker
from tests.conftest import BACKENDS, demo_database, token_for
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.push.conftest import (
    PUBLISHER,
    REGISTER,
    SHOP,
    SIGNING_SECRET,
    SUBMIT,
    delivery_body,
)
from tests.push.receiver import Receiver, serve

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.slow,
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL"),
]

ENV = {
    "KETENPOORT_PUSH_LEASE_SECONDS": "3",
    "KETENPOORT_PUSH_POLL_SECONDS": "0.1",
    "KETENPOORT_ENVIRONMENT": "test",
}
# Only a guard against a hang (a busy shared PostgreSQL server holds events back).
WAIT = 180.0


async def _post(
    gateway: Gateway, query: str, variables: dict[str, Any], as_: tuple[str, ...]
) -> Any:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            f"{gateway.url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token_for(*as_)}"},
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def _submit(gateway: Gateway, lines: int) -> list[str]:
    data = await _post(gateway, SUBMIT, {"input": delivery_body(lines)}, SHOP)
    payload = data["deliverySubmit"]
    assert payload["__typename"] == "DeliverySubmitted", payload
    return [e["id"] for e in payload["delivery"]["entitlements"]]


async def _until(condition: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while loop.time() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _objects(receiver: Receiver) -> list[str]:
    return [e["objectId"] for e in receiver.events()]


def _first_seen(receiver: Receiver) -> list[str]:
    seen: list[str] = []
    for event in receiver.events():
        if event["objectId"] not in seen:
            seen.append(event["objectId"])
    return seen


def _repeats_are_identical(receiver: Receiver) -> None:
    by_id: dict[str, dict[str, Any]] = {}
    for event in receiver.events():
        assert by_id.setdefault(event["id"], event) == event


async def test_two_gateways_deliver_each_event_once_and_survive_kill_9_mid_batch() -> None:
    async with (
        demo_database("postgresql") as (url, engine),
        serve() as shop,
        serve() as publisher,
    ):
        sessions = create_sessionmaker(engine)
        first = await asyncio.to_thread(start_gateway, url, demo=False, extra_env=ENV)
        second = await asyncio.to_thread(start_gateway, url, demo=False, extra_env=ENV)
        gateways = {first.process.pid: first, second.process.pid: second}
        try:
            endpoint_ids = {}
            for receiver, who in ((shop, SHOP), (publisher, PUBLISHER)):
                body = {"url": receiver.url, "auth": "SIGNED", "secret": SIGNING_SECRET}
                data = await _post(first, REGISTER, {"input": body}, who)
                endpoint_ids[who] = int(data["pushEndpointRegister"]["endpoint"]["id"])

            async def owners() -> dict[int, str | None]:
                async with sessions() as session:
                    rows = await session.execute(
                        select(store.PushEndpoint.id, store.PushEndpoint.lease_owner)
                    )
                    return dict(rows.all())

            async def leased() -> bool:
                return all(owner is not None for owner in (await owners()).values())

            await _until(leased, "both endpoints leased")

            # Both processes run: every event once per endpoint.
            expected: list[str] = []
            for index in range(6):
                target = first if index % 2 else second
                expected += await _submit(target, lines=2)

            async def all_arrived() -> bool:
                return set(expected) <= set(_objects(shop)) and set(expected) <= set(
                    _objects(publisher)
                )

            await _until(all_arrived, "every event at both receivers")
            for receiver in (shop, publisher):
                assert _objects(receiver) == expected  # once each, in commit order
                assert len(set(receiver.ids())) == len(receiver.ids())

            # Kill the holder of the shop endpoint's lease while a batch is in flight.
            holder_pid = int(str((await owners())[endpoint_ids[SHOP]]).split(":")[1])
            assert holder_pid in gateways
            survivor = next(g for pid, g in gateways.items() if pid != holder_pid)
            shop.delay = 2.0
            before = len(shop.requests)
            more = await _submit(survivor, lines=2)

            async def in_flight() -> bool:
                return len(shop.requests) > before

            await _until(in_flight, "a batch in flight to the shop")
            os.kill(holder_pid, signal.SIGKILL)
            gateways[holder_pid].process.wait(timeout=30)
            shop.delay = 0.0
            expected += more
            more = await _submit(survivor, lines=2)
            expected += more

            async def taken_over() -> bool:
                return set(expected) <= set(_objects(shop)) and set(expected) <= set(
                    _objects(publisher)
                )

            await _until(taken_over, "the survivor to deliver everything")
            owner = (await owners())[endpoint_ids[SHOP]]
            assert owner is not None
            assert int(owner.split(":")[1]) == survivor.process.pid
            # The batch in flight was sent again, with the same ids; nothing else twice.
            counts = Counter(shop.ids())
            repeated = {i for i, n in counts.items() if n > 1}
            assert repeated, "the batch in flight should have been sent again"
            in_flight_batch = {e["id"] for e in shop.requests[before].events}
            assert repeated <= in_flight_batch
            for receiver in (shop, publisher):
                assert _first_seen(receiver) == expected  # nothing lost, nothing out of order
                _repeats_are_identical(receiver)
        finally:
            for gateway in gateways.values():
                if gateway.process.poll() is None:
                    await asyncio.to_thread(stop_gateway, gateway)
