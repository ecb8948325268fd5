"""The compiled reads' plain connections (db/pg.Connections): reused, bounded,
waited for in turn, and never reused after an interrupted statement."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from db.pg import Connections
from tests.waiting import until_async

WAIT = 60


async def test_a_connection_is_reused_and_survives_a_postgres_error(
    postgres_only: None, backend: Any
) -> None:
    connections = Connections(backend.engine.url, max_size=2)
    try:
        async with connections.acquire() as first:
            assert await first.fetchval("SELECT 1") == 1
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with connections.acquire() as again:
                await again.fetchval("SELECT 1 / 0")
        assert again is first
        async with connections.acquire() as third:
            assert third is first
            assert await third.fetchval("SELECT 2") == 2
    finally:
        await connections.close()


async def test_at_most_max_size_are_open_and_waiters_are_served_in_turn(
    postgres_only: None, backend: Any
) -> None:
    connections = Connections(backend.engine.url, max_size=2)
    release, both = asyncio.Event(), asyncio.Event()
    seen: list[Any] = []

    async def hold() -> None:
        async with connections.acquire() as connection:
            seen.append(connection)
            if len(seen) == 2:
                both.set()
            await release.wait()

    try:
        holders = [asyncio.create_task(hold()) for _ in range(2)]
        async with asyncio.timeout(WAIT):
            await both.wait()
        waiting = asyncio.create_task(hold())
        await _until_waiting(connections)
        assert len(seen) == 2  # the third waits: both places are taken
        release.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*holders, waiting)
        assert len(seen) == 3
        assert seen[2] in seen[:2]  # handed on, not a third connection
    finally:
        await connections.close()


async def test_a_statement_cancelled_midway_closes_its_connection(
    postgres_only: None, backend: Any
) -> None:
    """As when a request's deadline cuts a compiled read off: the connection may be
    in the middle of the protocol, so it is closed and the next checkout opens a
    new one that works."""
    connections = Connections(backend.engine.url, max_size=1)
    started = asyncio.Event()
    try:

        async def slow() -> None:
            async with connections.acquire() as connection:
                started.set()
                await connection.fetchval("SELECT pg_sleep(30)")

        task = asyncio.create_task(slow())
        async with asyncio.timeout(WAIT):
            await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(WAIT), connections.acquire() as fresh:
            assert await fresh.fetchval("SELECT 3") == 3
    finally:
        await connections.close()


async def test_a_waiter_that_gives_up_leaves_no_place_taken(
    postgres_only: None, backend: Any
) -> None:
    connections = Connections(backend.engine.url, max_size=1)
    try:
        async with connections.acquire() as only:
            waiter = asyncio.create_task(connections.take())
            await _until_waiting(connections)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with asyncio.timeout(WAIT), connections.acquire() as next_one:
            assert next_one is only
    finally:
        await connections.close()


async def _until_waiting(connections: Connections) -> None:
    await until_async(lambda: connections.waiting, "a checkout waiting for a place")


def test_the_compiled_reads_take_at_least_one_connection() -> None:
    from pydantic import ValidationError

    from settings import Settings

    assert Settings().compiled_reads_connections == 3
    with pytest.raises(ValidationError, match="compiled_reads_connections"):
        Settings(compiled_reads_connections=0)
