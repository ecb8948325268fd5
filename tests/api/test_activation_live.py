"""Activations and the live side of the gateway, on SQLite and PostgreSQL:

* a broker without subscribers reads no events after the activations' commits, and a
  subscriber that joins later still gets every later activation once, in commit order
  (live from where it joins, or replayed from a cursor it resumes after);
* licenceActivate sent over the websocket goes through the process's group commit and
  reference cache, as over HTTP (PostgreSQL).

Timeouts only keep a broken test from hanging; nothing asserts speed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import events
from db.engine import create_sessionmaker, read_only
from db.models import Event
from db.pagination import event_cursor
from settings import Environment, Settings
from tests.api.activation_support import click, counts, school_entitlement
from tests.api.test_activation import ACTIVATE, LICENSOR
from tests.api.test_live import ACTIVATIONS, WAIT, LiveApp, until
from tests.conftest import BACKENDS, Backend, demo_database, token_for
from tests.e2e.conftest import free_port

OPERATOR = ("operator", "operator")


def _settings(url: str, **overrides: Any) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=url,
        rate_limit_per_second=0,
        live_queue_size=50,
        live_batch_size=20,
        **overrides,
    )


@pytest.fixture(scope="module")
async def quiet_app(backend: Backend) -> AsyncIterator[LiveApp]:
    """The app with its lifespan on a committed database; the broker's poll is an hour
    away, so only commits, NOTIFY and subscriptions make it do anything."""
    from app import create_app

    async with demo_database(backend.name, pool_size=20) as (url, engine):
        settings = _settings(url, live_poll_seconds=3600)
        app = create_app(settings, sessionmaker=create_sessionmaker(engine))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://g"
            ) as client,
        ):
            yield LiveApp(backend, app, client, engine, settings)


async def _activate(gw: LiveApp, product: Any, pupil: Any) -> int:
    answer = (await gw.data(ACTIVATE, {"input": click(product, pupil)}, as_=LICENSOR))[
        "licenceActivate"
    ]
    assert answer["__typename"] == "LicenceGranted", answer
    return int(answer["licence"]["id"])


async def test_no_event_reads_without_subscribers_and_a_later_subscriber_misses_none(
    quiet_app: LiveApp,
) -> None:
    gw, broker = quiet_app, quiet_app.broker
    product, entitlement, pupils = await school_entitlement(gw.engine, 8)
    async with create_sessionmaker(gw.engine)() as session:
        await read_only(session)
        before = await events.stable_head(session)
    assert broker.subscriber_count == 0
    fanned, skipped = broker.stats.events, broker.stats.skipped

    unseen = [await _activate(gw, product, pupil) for pupil in pupils[:3]]
    # Each commit woke the broker (directly, or through the group commit's wake-up),
    # and it read nothing: nobody here subscribes.
    await until(lambda: broker.stats.skipped > skipped, "the broker's wake-up")
    assert broker.stats.events == fanned

    live = await gw.subscribe(ACTIVATIONS, {}, as_=OPERATOR)
    seen = [await _activate(gw, product, pupil) for pupil in pupils[3:6]]
    got = await live.take(3)
    # From where it joined: none of the activations before it, each later one once.
    assert [int(item["licenceId"]) for item in got] == seen

    resumed = await gw.subscribe(ACTIVATIONS, {"after": event_cursor(*before)}, as_=OPERATOR)
    replayed = await resumed.take(6)
    assert [int(item["licenceId"]) for item in replayed] == unseen + seen
    assert [item["cursor"] for item in replayed[3:]] == [item["cursor"] for item in got]

    # Both go on with the next activation, and nothing came twice before it.
    last = await _activate(gw, product, pupils[6])
    assert int((await live.next())["licenceId"]) == last
    assert int((await resumed.next())["licenceId"]) == last
    await live.close()
    await resumed.close()
    await until(lambda: broker.subscriber_count == 0, "the subscriptions' end")
    assert await counts(gw.engine, entitlement.id) == (7, 7, 7)


# --- licenceActivate over the websocket -------------------------------------------------------


async def _ws_activate(url: str, input: dict[str, Any]) -> dict[str, Any]:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = {"Authorization": f"Bearer {token_for(*LICENSOR)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": ACTIVATE, "variables": {"input": input}},
                }
            )
        )
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            if message["type"] == "next":
                assert "errors" not in message["payload"], message
                return message["payload"]["data"]["licenceActivate"]  # type: ignore[no-any-return]
            assert message["type"] not in ("error", "complete"), message


async def _transactions(engine: AsyncEngine, entitlement_id: int) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(func.count(func.distinct(Event.tx_id))).where(
                Event.entitlement_id == entitlement_id, Event.kind == "LICENCE_ACTIVATED"
            )
        )
    return int(found or 0)


async def test_an_activation_over_the_websocket_joins_the_group_commit() -> None:
    if "postgresql" not in BACKENDS:
        pytest.skip("group commit is PostgreSQL's")
    from app import create_app

    async with demo_database("postgresql", pool_size=20) as (url, engine):
        product, entitlement, pupils = await school_entitlement(engine, 2)
        # A batch starts only when two clicks wait: one sent over HTTP, one over the
        # websocket. Without the group commit on the websocket path the HTTP click
        # would wait for a second click forever (the window is a minute).
        settings = _settings(
            url, activation_batch_window_ms=60_000, activation_batch_max=2, live_poll_seconds=0.2
        )
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        serving = asyncio.create_task(server.serve())
        try:
            await until(lambda: server.started, "the server")
            group_commit = app.state.graphql.activation.group_commit
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def over_http() -> dict[str, Any]:
                    response = await client.post(
                        "/graphql",
                        json={"query": ACTIVATE, "variables": {"input": click(product, pupils[0])}},
                        headers={"Authorization": f"Bearer {token_for(*LICENSOR)}"},
                        timeout=WAIT,
                    )
                    return response.json()["data"]["licenceActivate"]  # type: ignore[no-any-return]

                http_answer, ws_answer = await asyncio.wait_for(
                    asyncio.gather(
                        over_http(),
                        _ws_activate(f"ws://127.0.0.1:{port}/graphql", click(product, pupils[1])),
                    ),
                    WAIT,
                )
            assert (http_answer["rule"], http_answer["created"]) == ("SCHOOL", True)
            assert (ws_answer["rule"], ws_answer["created"]) == ("SCHOOL", True)
            assert (group_commit.batches, group_commit.clicks) == (1, 2)
        finally:
            server.should_exit = True
            await serving
        assert await counts(engine, entitlement.id) == (2, 2, 2)
        assert await _transactions(engine, entitlement.id) == 1
