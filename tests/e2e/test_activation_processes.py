"""Activation across real gateway processes on PostgreSQL: exact seats when two
processes' group commits race for one entitlement, and durability when a gateway is
killed (SIGKILL) while batches are in flight.

Durability (issue 15.4, `synchronous_commit` on): every click that got an answer is
in the database; every click that did not is either wholly there (licence, seat,
event, idempotency record) or wholly absent; and a retry with the same referenceId,
through another process, gives the answer the first one gave (or, for a click that
left nothing behind, a new licence).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db.engine import create_engine
from db.models import Licence, ProcessedMessage
from tests.api.activation_support import click, counts, school_entitlement
from tests.api.test_activation import ACTIVATE
from tests.conftest import (
    BACKENDS,
    _create_postgres_database,
    _drop_postgres_database,
    token_for,
)
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.factories import MadePerson

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL's group commit")

BEARER = {"Authorization": f"Bearer {token_for('demo-publisher', 'licensor')}"}


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[tuple[str, AsyncEngine]]:
    name, url = await _create_postgres_database()
    engine = create_engine(url)
    try:
        yield url, engine
    finally:
        await engine.dispose()
        await _drop_postgres_database(name)


@pytest.fixture(scope="module")
async def first(database: tuple[str, AsyncEngine]) -> AsyncIterator[Gateway]:
    gateway = await asyncio.to_thread(start_gateway, database[0])
    yield gateway
    stop_gateway(gateway)


async def _setup(engine: AsyncEngine, pupils: int, quantity: int) -> tuple[Any, Any, list]:
    return await school_entitlement(engine, pupils, quantity=quantity)


async def _click(
    client: httpx.AsyncClient, url: str, product: Any, pupil: MadePerson, reference: str | None
) -> dict[str, Any]:
    input = click(product, pupil, reference=reference)
    response = await client.post(
        f"{url}/graphql",
        json={"query": ACTIVATE, "variables": {"input": input}},
        headers=BEARER,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["licenceActivate"]  # type: ignore[no-any-return]


_counts = counts


async def test_two_processes_give_200_pupils_on_150_seats_exactly_150(
    database: tuple[str, AsyncEngine], first: Gateway
) -> None:
    url, engine = database
    second = await asyncio.to_thread(start_gateway, url, demo=False)
    try:
        product, entitlement, pupils = await _setup(engine, 200, 150)
        async with httpx.AsyncClient(timeout=120) as client:
            answers = await asyncio.gather(
                *[
                    _click(client, (first, second)[n % 2].url, product, pupil, None)
                    for n, pupil in enumerate(pupils)
                ]
            )
            # One pupil clicking on both processes at once: one licence.
            double = await asyncio.gather(
                *[
                    _click(client, (first, second)[n % 2].url, product, pupils[0], None)
                    for n in range(8)
                ]
            )
    finally:
        stop_gateway(second)
    assert Counter((a["__typename"], a["rule"]) for a in answers) == {
        ("LicenceGranted", "SCHOOL"): 150,
        ("ActivationDenied", "QUANTITY_EXHAUSTED"): 50,
    }
    assert await _counts(engine, entitlement.id) == (150, 150, 150)
    by_process = Counter(
        n % 2 for n, a in enumerate(answers) if a["__typename"] == "LicenceGranted"
    )
    assert set(by_process) == {0, 1}  # both processes registered seats
    if answers[0]["__typename"] == "LicenceGranted":
        assert {a["licence"]["id"] for a in double} == {answers[0]["licence"]["id"]}
    else:
        assert {a["rule"] for a in double} == {"QUANTITY_EXHAUSTED"}


async def test_a_gateway_killed_during_batches_loses_no_answered_click_and_no_half_click(
    database: tuple[str, AsyncEngine], first: Gateway
) -> None:
    url, engine = database
    clicks = 240
    victim = await asyncio.to_thread(start_gateway, url, demo=False)
    product, entitlement, pupils = await _setup(engine, clicks, clicks)
    tag = f"kill-{entitlement.id}"
    answered: dict[int, dict[str, Any]] = {}
    enough = asyncio.Event()
    gate = asyncio.Semaphore(32)

    async def send(client: httpx.AsyncClient, n: int) -> None:
        async with gate:
            try:
                answer = await _click(client, victim.url, product, pupils[n], f"{tag}-{n}")
            except httpx.TransportError:
                return  # the gateway died before answering
            answered[n] = answer
            if len(answered) >= 48:
                enough.set()

    try:
        async with httpx.AsyncClient(timeout=120) as client:
            sending = asyncio.gather(*[send(client, n) for n in range(clicks)])
            await asyncio.wait_for(enough.wait(), timeout=300)
            os.kill(victim.process.pid, signal.SIGKILL)
            await sending
    finally:
        victim.process.kill()
        victim.process.wait(timeout=30)
    assert 48 <= len(answered) < clicks, "the kill came after the last click"

    async with AsyncSession(engine) as session:
        licences = {
            person: licence
            for person, licence in await session.execute(
                select(Licence.person_id, Licence.id).where(
                    Licence.entitlement_id == entitlement.id
                )
            )
        }
        records = {
            reference: response
            for reference, response in await session.execute(
                select(ProcessedMessage.reference_id, ProcessedMessage.response).where(
                    ProcessedMessage.reference_id.like(f"{tag}-%")
                )
            )
        }
    for n, answer in answered.items():
        assert answer["created"] is True
        licence_id = int(answer["licence"]["id"])
        assert licences[pupils[n].id] == licence_id
        assert records[f"{tag}-{n}"]["licence"]["id"] == licence_id
    for n in set(range(clicks)) - set(answered):
        there = pupils[n].id in licences
        assert there == (f"{tag}-{n}" in records), n  # wholly there or wholly absent
        if there:
            assert records[f"{tag}-{n}"]["licence"]["id"] == licences[pupils[n].id]
    held, used, events = await _counts(engine, entitlement.id)
    assert held == used == events == len(licences) == len(records)

    retry = await asyncio.to_thread(start_gateway, url, demo=False)
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            again = await asyncio.gather(
                *[
                    _click(client, retry.url, product, pupils[n], f"{tag}-{n}")
                    for n in range(clicks)
                ]
            )
    finally:
        stop_gateway(retry)
    for n, answer in enumerate(again):
        assert answer["__typename"] == "LicenceGranted"
        if n in answered:
            assert answer["licence"]["id"] == answered[n]["licence"]["id"]
            assert answer["replayed"] is True
        elif pupils[n].id in licences:
            assert int(answer["licence"]["id"]) == licences[pupils[n].id]
            assert answer["replayed"] is True
        else:
            assert (answer["created"], answer["replayed"]) == (True, False)
    assert await _counts(engine, entitlement.id) == (clicks, clicks, clicks)
