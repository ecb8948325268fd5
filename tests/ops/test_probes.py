"""Probes (issue 17.4): /livez answers while the process runs; /readyz (and its
alias /healthz) only when the database answers, the schema is at the migrations'
head and the live broker runs, listens and is not stalled."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from app import create_app
from db.engine import create_engine
from gateway.probes import migrations_head
from settings import Environment, Settings
from tests.ops.conftest import ops_settings, running_app


async def test_a_running_gateway_is_live_and_ready(database: str) -> None:
    async with running_app(ops_settings(database)) as client:
        broker = client.app.state.broker
        if broker.is_postgres:  # LISTEN connects in the background after start
            for _ in range(300):
                if broker._listen_connection is not None:
                    break
                await asyncio.sleep(0.05)
        assert (await client.get("/livez")).json() == {"status": "ok"}
        for path in ("/readyz", "/healthz"):
            response = await client.get(path)
            assert response.status_code == 200, response.text
            assert response.json() == {
                "status": "ok", "database": "up", "migrations": "at head", "broker": "listening"
            }


async def test_not_ready_while_the_schema_is_behind_the_migrations(database: str) -> None:
    async with running_app(ops_settings(database)) as client:
        engine = create_engine(database)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["migrations"] == f"at 0001, head is {migrations_head()}"
            assert (await client.get("/livez")).status_code == 200
        finally:
            await engine.dispose()


async def test_not_ready_without_a_database() -> None:
    """A database that cannot be reached: 503 with the reason, never a crash."""
    settings = Settings(
        environment=Environment.TEST,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none",
    )
    app = create_app(settings)
    app.state.probes.sessionmaker = lambda: create_engine(settings.database_url).connect()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["database"].startswith("down: ")
        assert body["broker"] == "not running"
        assert (await client.get("/livez")).status_code == 200


async def test_not_ready_when_the_broker_stalls_or_stops(database: str) -> None:
    settings = ops_settings(database, live_poll_seconds=3600, ready_broker_stall_seconds=0.2)
    async with running_app(settings) as client:
        broker = client.app.state.broker
        broker._listen_connection = broker._listen_connection or object()  # listening
        # The broker reads only when woken (poll an hour): no read for 0.2 s = stalled.
        for _ in range(200):
            response = await client.get("/readyz")
            if response.status_code == 503:
                break
            await asyncio.sleep(0.05)
        assert response.json()["broker"].startswith("stalled: no read of the event table")
        broker.wake()  # a read completes: ready again
        for _ in range(200):
            response = await client.get("/readyz")
            if response.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert response.status_code == 200, response.text
        await broker.stop()
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["broker"] == "not running"
