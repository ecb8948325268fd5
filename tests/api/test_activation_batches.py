"""Group commit on PostgreSQL (services/group_commit.py): the clicks one process
receives together are decided and registered in one transaction, and every click
still gets its own answer, licence, event and idempotency record.

Each test runs the real app (its lifespan opens the plain pool, the group commit and
the reference cache) on a committed throwaway database, with batch settings that make
the batches' make-up independent of the machine's speed: a long window and a
maximum batch size, so a batch starts exactly when that many clicks wait.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import create_app
from db.engine import create_sessionmaker
from db.models import Event, ProcessedMessage, Product
from domain.entitlements import Variant
from tests.api.activation_support import click, counts, school_entitlement
from tests.api.test_activation import ACTIVATE, LICENSOR
from tests.api.test_delivery import STEP_FIELDS
from tests.conftest import BACKENDS, TEST_SETTINGS, demo_database, token_for
from tests.factories import MadePerson, make_entitlement, make_person, make_product, school_id

SHOP = ("demo-shop", "seller")


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    if "postgresql" not in BACKENDS:
        pytest.skip("group commit is PostgreSQL's")
    async with demo_database("postgresql", pool_size=20) as (_url, engine):
        yield engine


@dataclass
class Gateway:
    app: Any
    client: httpx.AsyncClient

    @property
    def group_commit(self) -> Any:
        return self.app.state.graphql.activation.group_commit

    async def execute(self, query: str, variables: dict[str, Any], as_: tuple[str, ...]) -> Any:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token_for(as_[0], *as_[1:])}"},
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def click(
        self, product: Product, pupil: MadePerson, reference: str | None = None
    ) -> dict[str, Any]:
        input = click(product, pupil, reference=reference)
        return (await self.execute(ACTIVATE, {"input": input}, LICENSOR))["licenceActivate"]  # type: ignore[no-any-return]


@asynccontextmanager
async def gateway(engine: AsyncEngine, **settings: Any) -> AsyncIterator[Gateway]:
    app = create_app(
        TEST_SETTINGS.model_copy(update=settings), sessionmaker=create_sessionmaker(engine)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client,
    ):
        yield Gateway(app, client)


async def _setup(engine: AsyncEngine, pupils: int, quantity: int = 500) -> tuple[Any, Any, list]:
    return await school_entitlement(engine, pupils, quantity=quantity)


_counts = counts


async def _transactions(engine: AsyncEngine, entitlement_id: int) -> int:
    """How many transactions wrote the entitlement's activation events."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(func.count(func.distinct(Event.tx_id))).where(
                Event.entitlement_id == entitlement_id, Event.kind == "LICENCE_ACTIVATED"
            )
        )
    return int(found or 0)


async def test_clicks_that_arrive_together_are_registered_in_one_transaction(
    engine: AsyncEngine,
) -> None:
    product, entitlement, pupils = await _setup(engine, 32)
    async with gateway(engine, activation_batch_window_ms=60_000, activation_batch_max=8) as gw:
        answers = await asyncio.gather(*[gw.click(product, p) for p in pupils])
        assert (gw.group_commit.batches, gw.group_commit.clicks) == (4, 32)
    assert Counter((a["__typename"], a["rule"], a["created"]) for a in answers) == {
        ("LicenceGranted", "SCHOOL", True): 32
    }
    assert len({a["licence"]["id"] for a in answers}) == 32
    assert await _counts(engine, entitlement.id) == (32, 32, 32)
    assert await _transactions(engine, entitlement.id) == 4
    async with engine.connect() as conn:
        per_licence = await conn.execute(
            select(Event.licence_id, func.count())
            .where(Event.entitlement_id == entitlement.id)
            .group_by(Event.licence_id)
        )
        assert {licence: n for licence, n in per_licence} == {
            int(a["licence"]["id"]): 1 for a in answers
        }


async def test_a_lone_click_is_answered_when_the_window_closes(engine: AsyncEngine) -> None:
    product, entitlement, pupils = await _setup(engine, 1)
    async with gateway(engine, activation_batch_window_ms=50, activation_batch_max=64) as gw:
        answer = await asyncio.wait_for(gw.click(product, pupils[0]), timeout=60)
        assert (gw.group_commit.batches, gw.group_commit.clicks) == (1, 1)
    assert (answer["rule"], answer["created"]) == ("SCHOOL", True)
    assert await _counts(engine, entitlement.id) == (1, 1, 1)


async def test_a_double_click_in_one_batch_gets_one_licence(engine: AsyncEngine) -> None:
    product, entitlement, pupils = await _setup(engine, 1)
    async with gateway(engine, activation_batch_window_ms=60_000, activation_batch_max=8) as gw:
        answers = await asyncio.gather(*[gw.click(product, pupils[0]) for _ in range(8)])
        assert gw.group_commit.batches == 1
    assert {a["__typename"] for a in answers} == {"LicenceGranted"}
    assert len({a["licence"]["id"] for a in answers}) == 1
    assert sorted(a["rule"] for a in answers) == ["EXISTING_LICENCE"] * 7 + ["SCHOOL"]
    assert sum(a["created"] for a in answers) == 1
    assert await _counts(engine, entitlement.id) == (1, 1, 1)


async def test_200_pupils_on_150_seats_in_batches_get_exactly_150(engine: AsyncEngine) -> None:
    product, entitlement, pupils = await _setup(engine, 200, quantity=150)
    async with gateway(engine, activation_batch_window_ms=60_000, activation_batch_max=20) as gw:
        answers = await asyncio.gather(*[gw.click(product, p) for p in pupils])
        assert gw.group_commit.batches == 10
    assert Counter((a["__typename"], a["rule"]) for a in answers) == {
        ("LicenceGranted", "SCHOOL"): 150,
        ("ActivationDenied", "QUANTITY_EXHAUSTED"): 50,
    }
    assert await _counts(engine, entitlement.id) == (150, 150, 150)


async def test_referenced_clicks_in_a_batch_get_their_own_record_and_answer(
    engine: AsyncEngine,
) -> None:
    product, entitlement, pupils = await _setup(engine, 7)
    tag = f"batch-{entitlement.id}"
    async with gateway(engine, activation_batch_window_ms=200, activation_batch_max=8) as gw:
        first = await asyncio.gather(
            *[gw.click(product, p, f"{tag}-{n}") for n, p in enumerate(pupils[:6])],
            gw.click(product, pupils[0], f"{tag}-0"),  # the same message twice in the batch
            gw.click(product, pupils[6], f"{tag}-1"),  # another message under a used id
        )
        assert gw.group_commit.batches == 1
        again = await asyncio.gather(
            *[gw.click(product, p, f"{tag}-{n}") for n, p in enumerate(pupils[:6])]
        )
    # The same message twice: whichever reached the batch first is processed, the
    # other gets its stored answer.
    original, repeat = sorted((first[0], first[6]), key=lambda a: a["replayed"])
    assert (original["rule"], original["created"], original["replayed"]) == ("SCHOOL", True, False)
    assert (repeat["licence"]["id"], repeat["replayed"]) == (original["licence"]["id"], True)
    # Two messages under one id: whichever came first is processed, the other refused.
    won, lost = sorted((first[1], first[7]), key=lambda a: a["__typename"] != "LicenceGranted")
    assert (won["__typename"], won["created"], won["replayed"]) == ("LicenceGranted", True, False)
    assert lost["__typename"] == "ReferenceConflictError"
    assert {(a["rule"], a["created"], a["replayed"]) for a in first[2:6]} == {
        ("SCHOOL", True, False)
    }
    # Repeated later: the stored answers.
    winner = first[1] if won is first[1] else None
    for n, answer in enumerate(again):
        if n == 1 and winner is None:
            assert answer["__typename"] == "ReferenceConflictError"
            continue
        expected = original if n == 0 else first[n]
        assert (answer["licence"]["id"], answer["replayed"]) == (expected["licence"]["id"], True)
    assert await _counts(engine, entitlement.id) == (6, 6, 6)
    async with engine.connect() as conn:
        records = await conn.scalar(
            select(func.count())
            .select_from(ProcessedMessage)
            .where(ProcessedMessage.reference_id.like(f"{tag}-%"))
        )
    assert records == 6


async def test_a_block_racing_the_batches_is_honoured(engine: AsyncEngine) -> None:
    product, entitlement, pupils = await _setup(engine, 60)
    block = f"""mutation ($input: EntitlementStepInput!) {{
        entitlementBlock(input: $input) {{ {STEP_FIELDS} }} }}"""
    async with gateway(engine, activation_batch_window_ms=5, activation_batch_max=8) as gw:

        async def seller_blocks() -> Any:
            await gw.click(product, pupils[0])  # after the first batch, among the others
            return await gw.execute(
                block,
                {"input": {"entitlementId": str(entitlement.id), "referenceId": "race-block"}},
                SHOP,
            )

        results = await asyncio.gather(seller_blocks(), *[gw.click(product, p) for p in pupils[1:]])
    assert results[0]["entitlementBlock"]["__typename"] == "EntitlementChanged"
    rules = Counter(a["rule"] for a in results[1:])
    assert set(rules) <= {"SCHOOL", "BLOCKED"}, rules
    licences, used, events = await _counts(engine, entitlement.id)
    assert licences == used == events == rules["SCHOOL"] + 1
    async with engine.connect() as conn:
        # In the stream, every activation comes before the block: none after it.
        positions = (
            await conn.execute(
                select(Event.kind, Event.tx_id, Event.id).where(
                    Event.entitlement_id == entitlement.id
                )
            )
        ).all()
    blocked = [(tx, i) for kind, tx, i in positions if kind == "ENTITLEMENT_BLOCKED"]
    activated = [(tx, i) for kind, tx, i in positions if kind == "LICENCE_ACTIVATED"]
    assert len(blocked) == 1
    assert max(activated) < blocked[0]


async def test_a_lower_quantity_racing_the_batches_is_honoured(engine: AsyncEngine) -> None:
    product, entitlement, pupils = await _setup(engine, 60, quantity=100)
    lower = f"""mutation ($input: EntitlementQuantityInput!) {{
        entitlementLowerQuantity(input: $input) {{ {STEP_FIELDS} }} }}"""
    async with gateway(engine, activation_batch_window_ms=5, activation_batch_max=8) as gw:

        async def seller_lowers() -> Any:
            await gw.click(product, pupils[0])
            return await gw.execute(
                lower,
                {
                    "input": {
                        "entitlementId": str(entitlement.id),
                        "referenceId": "race-lower",
                        "quantity": 20,
                    }
                },
                SHOP,
            )

        results = await asyncio.gather(seller_lowers(), *[gw.click(product, p) for p in pupils[1:]])
    lowered = results[0]["entitlementLowerQuantity"]
    licences, used, events = await _counts(engine, entitlement.id)
    assert licences == used == events
    rules = Counter(a["rule"] for a in results[1:])
    assert set(rules) <= {"SCHOOL", "QUANTITY_EXHAUSTED"}, rules
    if lowered["__typename"] == "EntitlementChanged":
        assert licences <= 20
        assert rules["SCHOOL"] + 1 == licences
    else:  # the seats were taken first: refused with 41, nobody denied
        assert lowered["code"] == 41
        assert licences == 60


async def test_the_dashboard_summaries_equal_the_rows_after_batches(engine: AsyncEngine) -> None:
    """Statement-level triggers (migration 0006) append one difference per summary key
    per batch; folded, the summaries equal counting the rows."""
    product, entitlement, pupils = await _setup(engine, 24)
    async with gateway(engine, activation_batch_window_ms=60_000, activation_batch_max=8) as gw:
        await asyncio.gather(*[gw.click(product, p) for p in pupils])
    async with engine.connect() as conn:
        await conn.execute(text("SELECT dashboard_compact()"))
        await conn.commit()
        summary = (
            await conn.execute(
                text(
                    "SELECT sum(licences_used), sum(entitlements) FROM entitlement_summary "
                    "WHERE product_id = :p"
                ),
                {"p": product.id},
            )
        ).one()
        days = await conn.scalar(
            text("SELECT sum(activations) FROM licence_day_summary WHERE product_id = :p"),
            {"p": product.id},
        )
    assert tuple(summary) == (24, 1)
    assert days == 24


async def test_a_set_made_after_a_click_is_seen_when_postgres_tells_the_cache(
    engine: AsyncEngine,
) -> None:
    """The product (and the sets containing it) is cached per process; a change
    committed by another connection is announced by NOTIFY and the cache forgets."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        school = await school_id(session, "104A158")
        part = await make_product(session)
        pupil = await make_person(session, school=school)
        await session.commit()
    async with gateway(engine, activation_batch_window_ms=5) as gw:
        cache = gw.app.state.graphql.activation.cache
        await asyncio.wait_for(cache.ready(), timeout=60)
        first = await gw.click(part, pupil)
        assert first["rule"] == "NO_ENTITLEMENT"
        assert ("product", part.code) in cache
        generation = cache.generation
        async with AsyncSession(engine, expire_on_commit=False) as session:
            bundle = await make_product(session, components=[part.id])
            await make_entitlement(session, product=bundle, school=school, variant=Variant.SCHOOL)
            await session.commit()
        await asyncio.wait_for(cache.forgotten(generation), timeout=60)
        assert ("product", part.code) not in cache
        second = await gw.click(part, pupil)
    assert (second["rule"], second["created"]) == ("SCHOOL", True)
    assert second["licence"]["product"]["productId"] == bundle.code


async def test_a_click_the_store_cannot_hold_fails_alone(engine: AsyncEngine) -> None:
    """A referenceId longer than the store keeps (it passed no resolver here): its batch
    fails, each click runs alone, and only that click fails."""
    from db.activation import ActivationRequest, ProductRef
    from domain.identifiers import PersonIdScheme
    from domain.roles import Actor
    from services.unit_of_work import Click, Reference

    product, entitlement, pupils = await _setup(engine, 8)
    async with gateway(engine, activation_batch_window_ms=60_000, activation_batch_max=8) as gw:
        async with AsyncSession(engine) as session:
            school = await school_id(session, "104A158")
        ref = ProductRef(product.id, product.code, 0)

        def click_of(pupil: MadePerson, reference: Reference | None) -> Click:
            request = ActivationRequest(school, ref, ((PersonIdScheme.ECK_ID, pupil.eck_id),))
            return Click(request, Actor(None, "licensor"), reference)

        too_long = Reference((1, "licenceActivate", "x" * 500), "digest")
        results = await asyncio.gather(
            *[gw.group_commit.activate(click_of(p, None)) for p in pupils[:7]],
            gw.group_commit.activate(click_of(pupils[7], too_long)),
            return_exceptions=True,
        )
    assert [type(r).__name__ for r in results] == ["Answered"] * 7 + [
        "StringDataRightTruncationError"
    ]
    assert {r.answer["rule"] for r in results[:7]} == {"SCHOOL"}  # type: ignore[union-attr]
    assert await _counts(engine, entitlement.id) == (7, 7, 7)


async def test_a_reference_id_or_code_the_store_cannot_hold_is_refused(engine: AsyncEngine) -> None:
    product, entitlement, pupils = await _setup(engine, 1)
    async with gateway(engine, activation_batch_window_ms=5) as gw:
        long_reference = await gw.click(product, pupils[0], "r" * 129)
        # A NUL in any input string is refused at the door (gateway/inputs.py).
        nul_code = (await gw.client.post("/graphql", json={
            "query": ACTIVATE,
            "variables": {"input": {**click(product, pupils[0]), "activationCode": "A\x00B"}},
        }, headers={"Authorization": f"Bearer {token_for(*LICENSOR)}"})).json()
    assert long_reference["__typename"] == "ValidationError"
    assert [p["field"] for p in long_reference["problems"]] == ["referenceId"]
    assert nul_code["errors"][0]["extensions"]["reason"] == "nul"
    assert nul_code["errors"][0]["extensions"]["field"].startswith("$input.activationCode")
    assert await _counts(engine, entitlement.id) == (0, 0, 0)


async def test_one_pupil_through_two_schools_in_two_processes_gets_one_licence(
    engine: AsyncEngine,
) -> None:
    """Pupils enrolled at two schools, each school with an open entitlement on the same
    product: a click through each school, in two gateway processes, at once. The two
    batches lock no seat in common; the lock on each pupil's licences on the product
    makes the second batch see the first one's licences."""
    from db.models import Enrolment, Entitlement
    from tests.factories import current_period

    async with AsyncSession(engine, expire_on_commit=False) as session:
        college, other = await school_id(session, "104A158"), await school_id(session, "104A159")
        product = await make_product(session)
        pupils = [await make_person(session, school=college) for _ in range(12)]
        period = await current_period(session, other)
        session.add_all(
            Enrolment(person_id=p.id, school_id=other, period_id=period) for p in pupils
        )
        first, second = [
            await make_entitlement(session, product=product, school=s, variant=Variant.SCHOOL)
            for s in (college, other)
        ]
        await session.commit()
    batch = {"activation_batch_window_ms": 60_000, "activation_batch_max": len(pupils)}
    async with gateway(engine, **batch) as one, gateway(engine, **batch) as two:

        async def through(gw: Gateway, school: str, pupil: MadePerson) -> dict[str, Any]:
            input = click(product, pupil)
            input["school"] = {"value": school}
            return (await gw.execute(ACTIVATE, {"input": input}, LICENSOR))["licenceActivate"]  # type: ignore[no-any-return]

        async with engine.connect() as blocker, engine.connect() as watcher:
            # Both seats held here: each process reads its batch's facts (no licence
            # yet anywhere) and then waits at the lock, so the two batches run at once.
            await blocker.execute(
                select(Entitlement.id)
                .where(Entitlement.id.in_([first.id, second.id]))
                .with_for_update()
            )
            clicks = asyncio.ensure_future(
                asyncio.gather(
                    *[through(one, "104A158", p) for p in pupils],
                    *[through(two, "104A159", p) for p in pupils],
                )
            )
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'"
            )
            for _ in range(2400):
                if (await watcher.scalar(waiting)) >= 2 or clicks.done():
                    break
                await watcher.rollback()
                await asyncio.sleep(0.025)
            assert not clicks.done(), clicks.result()
            await blocker.rollback()
            answers = await asyncio.wait_for(clicks, 120)
    assert Counter((a["__typename"], a["rule"], a["created"]) for a in answers) == {
        ("LicenceGranted", "SCHOOL", True): len(pupils),
        ("LicenceGranted", "EXISTING_LICENCE", False): len(pupils),
    }
    async with engine.connect() as conn:
        held = await conn.execute(
            text(
                "SELECT person_id, count(*) FROM licence WHERE product_id = :p GROUP BY person_id"
            ),
            {"p": product.id},
        )
        assert sorted(n for _, n in held) == [1] * len(pupils)
    licences = [(await _counts(engine, e.id))[0] for e in (first, second)]
    assert sum(licences) == len(pupils)


async def test_batches_use_the_engines_connections_and_hand_them_back_outside_a_transaction(
    engine: AsyncEngine,
) -> None:
    """One pool per process: the group commit's asyncpg connections are the engine's.
    One handed back inside a transaction (a batch that failed or was cancelled there)
    is rolled back or discarded, never given to the next user as it is."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.resources import EnginePool

    product, entitlement, pupils = await _setup(engine, 16)
    async with gateway(engine, activation_batch_window_ms=60_000, activation_batch_max=8) as gw:
        pool = gw.app.state.graphql.activation.pool
        assert isinstance(pool, EnginePool)
        assert pool.engine is engine
        await asyncio.gather(*[gw.click(product, p) for p in pupils])
    assert await _counts(engine, entitlement.id) == (16, 16, 16)

    single = create_async_engine(engine.url, pool_size=1, max_overflow=0)
    try:
        pool = EnginePool(single)

        async def failing() -> None:
            async with pool.acquire() as connection:
                await connection.execute("BEGIN")
                raise RuntimeError("the batch failed")

        with pytest.raises(RuntimeError, match="the batch failed"):
            await failing()
        async with pool.acquire() as connection:
            assert not connection.is_in_transaction()

        started = asyncio.Event()

        async def stuck() -> None:
            async with pool.acquire() as connection:
                await connection.execute("BEGIN")
                started.set()
                await connection.execute("SELECT pg_sleep(60)")

        task = asyncio.ensure_future(stuck())
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(0)  # into the sleeping statement
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with pool.acquire() as connection:
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await single.dispose()
