"""Thousands of websocket connections opened, subscribed and dropped against one
gateway (uvicorn in this process, so its broker and tasks can be inspected):
afterwards no subscriber is registered, the event loop holds the tasks it held
before, and no connection's context or subscriber object is still alive.

Counts, not timing: the waits below only give the server time to notice the last
disconnects.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import uvicorn
import websockets

from live.broker import Subscriber
from live.context import LiveContext
from settings import Environment, Settings
from tests.conftest import demo_database, token_for
from tests.e2e.conftest import free_port

CYCLES = int(__import__("os").environ.get("LEAK_CYCLES", "2000"))
AT_ONCE = 5  # more only queues on SQLite's write lock (every session begins IMMEDIATE)

STATE = """subscription ($id: ID!) { deliveryProgress(entitlementId: $id, initialState: true) {
  __typename } }"""
LIVE = "subscription { entitlementsReachingStatus(status: BLOCKED) { __typename } }"


async def _cycle(url: str, number: int, token: str) -> None:
    """One client: connect, authenticate, subscribe, and leave in one of several ways."""
    kind = number % 4
    protocol = "graphql-ws" if kind == 2 else "graphql-transport-ws"
    async with websockets.connect(url, subprotocols=[protocol], compression=None, proxy=None) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        start = "start" if protocol == "graphql-ws" else "subscribe"
        query = LIVE if kind == 3 else STATE
        payload = {"query": query, "variables": {"id": "1"}}
        await ws.send(json.dumps({"id": "1", "type": start, "payload": payload}))
        if kind == 3:
            return  # gone before the subscription even started
        while True:
            message = json.loads(await ws.recv())
            if message["type"] in {"next", "data"}:
                break
        if kind == 0:
            await ws.send(json.dumps({"id": "1", "type": "complete"}))
        elif kind == 1:
            ws.transport.abort()  # no close handshake: the client just vanishes
        elif kind == 2:
            await ws.send(json.dumps({"id": "1", "type": "stop"}))


async def _settle(condition: Any) -> bool:
    for _ in range(200):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()  # type: ignore[no-any-return]


def _alive(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


async def test_thousands_of_connects_and_disconnects_leave_nothing_behind() -> None:
    async with demo_database("sqlite", pupils=5) as (url, _engine):
        await _connect_and_disconnect_thousands(url)


async def _connect_and_disconnect_thousands(database_url: str) -> None:
    from app import create_app

    settings = Settings(
        environment=Environment.TEST,
        database_url=database_url,
        live_poll_seconds=0.5,
        ws_keep_alive_seconds=0.05,  # keep-alive tasks run (and must end) in every cycle
        rate_limit_per_second=0,
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    assert await _settle(lambda: server.started)
    url = f"ws://127.0.0.1:{port}/graphql"
    token = token_for("demo-shop", "seller")
    broker = app.state.broker
    try:
        for number in range(4):  # warm up every path once
            await _cycle(url, number, token)
        assert await _settle(lambda: broker.subscriber_count == 0)
        baseline = len(asyncio.all_tasks())

        limit = asyncio.Semaphore(AT_ONCE)

        async def one(number: int) -> None:
            async with limit:
                await _cycle(url, number, token)

        await asyncio.gather(*(one(n) for n in range(CYCLES)))

        assert await _settle(lambda: broker.subscriber_count == 0), broker.subscriber_count
        assert broker.subscribers() == []
        assert await _settle(lambda: len(asyncio.all_tasks()) <= baseline), [
            t.get_coro() for t in asyncio.all_tasks()
        ]
        assert len(server.server_state.connections) == 0
        assert _alive(Subscriber) == 0
        assert _alive(LiveContext) == 0
    finally:
        server.should_exit = True
        await serving
    assert not broker.running
