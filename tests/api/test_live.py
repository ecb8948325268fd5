"""Live subscriptions through the schema and the real broker, on SQLite and
PostgreSQL: the app (with its lifespan, so the broker runs) on its own committed
database; mutations go through HTTP, subscriptions through `schema.subscribe`
with the websocket context.

Timeouts below only keep a broken test from hanging; nothing asserts speed.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import events, visibility
from db.demo import ean13
from db.engine import create_sessionmaker
from db.models import Entitlement, Event
from db.outbox import EventRow, record_events
from db.pagination import decode_event_cursor, event_cursor
from domain.events import EventKind
from domain.roles import Actor
from gateway.tokens import TokenVerifier
from live.context import LiveContext
from resolvers.clock import today
from settings import Environment, Settings
from tests.api.test_delivery import DASHBOARD, LMS, PORTAL, PUBLISHER, SHOP, delivery, line
from tests.api.test_delivery import step as delivery_step
from tests.api.test_delivery import submit as delivery_submit
from tests.conftest import Backend, demo_database, token_for
from tests.waiting import until_async

EVENT_FIELDS = """
    __typename
    ... on DeliveryProgressEvent {
      cursor kind status entitlementId deliveryId licenceId actorRole
      entitlement { id status }
    }
    ... on EntitlementSnapshot { cursor entitlement { id status } }
"""
PROGRESS = (
    """subscription ($delivery: ID, $school: OrganisationIdentifierInput, $entitlement: ID,
      $after: String, $initial: Boolean! = false) {
  deliveryProgress(deliveryId: $delivery, school: $school, entitlementId: $entitlement,
                   after: $after, initialState: $initial) { FIELDS } }"""
).replace("FIELDS", EVENT_FIELDS)
REACHING = (
    """subscription ($status: EntitlementStatus!, $after: String, $initial: Boolean! = false) {
  entitlementsReachingStatus(status: $status, after: $after, initialState: $initial) {
    FIELDS } }"""
).replace("FIELDS", EVENT_FIELDS)
ACTIVATIONS = """subscription ($after: String) {
  licenceActivations(after: $after) { cursor kind entitlementId licenceId } }"""

# Only a guard against a hang (a slow, shared machine), never a timing assertion.
WAIT = 90

_refs = itertools.count()


def ref(prefix: str) -> str:
    return f"{prefix}-{next(_refs)}-{uuid.uuid4().hex[:6]}"


async def until(condition: Any, what: str) -> None:
    """Wait for a state the test needs (bounded; not a timing assertion)."""
    await until_async(condition, what)


class Stream:
    """One subscription, read item by item. It is started at once (the first read
    runs in the background), so it is registered before the test goes on."""

    def __init__(self, results: Any) -> None:
        self.results = results
        self.pending: asyncio.Future[Any] | None = asyncio.ensure_future(results.__anext__())

    async def _result(self) -> Any:
        pending, self.pending = self.pending, None
        return await asyncio.wait_for(pending or self.results.__anext__(), WAIT)

    async def next(self) -> dict[str, Any]:
        result = await self._result()
        assert not result.errors, [e.formatted for e in result.errors]
        (value,) = result.data.values()
        return value  # type: ignore[no-any-return]

    async def take(self, n: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(n)]

    async def events(self, n: int) -> list[dict[str, Any]]:
        """The next n events, after any initial-state items."""
        found: list[dict[str, Any]] = []
        while len(found) < n:
            item = await self.next()
            if item["__typename"] == "DeliveryProgressEvent":
                found.append(item)
        return found

    async def error(self) -> Any:
        result = await self._result()
        assert result.errors, result.data
        return result.errors[0]

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            await asyncio.gather(self.pending, return_exceptions=True)
            self.pending = None
        await self.results.aclose()


@dataclass
class LiveApp:
    backend: Backend
    app: Any
    client: Any
    engine: AsyncEngine
    settings: Settings

    @property
    def broker(self) -> Any:
        return self.app.state.broker

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: tuple[str, ...]
    ) -> Any:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token_for(as_[0], *as_[1:])}"},
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: tuple[str, ...]
    ) -> Stream:
        graphql = self.app.state.graphql
        context = LiveContext(self.settings, graphql.sessionmaker, broker=self.broker)
        context.caller = TokenVerifier(self.settings).verify(
            f"Bearer {token_for(as_[0], *as_[1:])}"
        )
        results = await graphql.schema.subscribe(
            query, variable_values=variables or {}, context_value=context
        )
        before = self.broker.subscriber_count
        stream = Stream(results)
        pending = stream.pending
        assert pending is not None
        await until(
            lambda: self.broker.subscriber_count > before or pending.done(), "the subscription"
        )
        return stream

    async def stream_events(self, **where: Any) -> list[Event]:
        """The events of the table in stream order (what a reader must deliver)."""
        async with create_sessionmaker(self.engine)() as session:
            rows = await events.read(session, events.START, 10_000, upto=(2**62, 2**62))
        return [r for r in rows if all(getattr(r, k) == v for k, v in where.items())]


@pytest.fixture(scope="module")
async def live_app(backend: Backend) -> AsyncIterator[LiveApp]:
    import httpx

    from app import create_app

    async with demo_database(backend.name, pool_size=20) as (url, engine):
        settings = Settings(
            environment=Environment.TEST,
            database_url=url,
            live_poll_seconds=0.2,
            live_queue_size=50,
            live_batch_size=20,
            rate_limit_per_second=0,
        )
        app = create_app(settings, sessionmaker=create_sessionmaker(engine))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://g"
            ) as client,
        ):
            yield LiveApp(backend, app, client, engine, settings)


async def new_delivery(
    gw: LiveApp, lines: int = 1, school: str = "09QQ", **overrides: Any
) -> tuple[str, list[str]]:
    body = delivery(
        ref("live"), school=school, orderLines=[line(**overrides) for _ in range(lines)]
    )
    result = await delivery_submit(gw, body)  # type: ignore[arg-type]
    assert result["__typename"] == "DeliverySubmitted", result
    return result["delivery"]["id"], [e["id"] for e in result["delivery"]["entitlements"]]


async def step(gw: LiveApp, mutation: str, entitlement_id: str, as_: tuple[str, ...]) -> Any:
    return await delivery_step(gw, mutation, entitlement_id, as_, ref("step"))  # type: ignore[arg-type]


async def lower(gw: LiveApp, entitlement_id: str, quantity: int) -> None:
    answer = await delivery_step(
        gw,  # type: ignore[arg-type]
        "entitlementLowerQuantity",
        entitlement_id,
        SHOP,
        ref("lower"),
        quantity=quantity,
    )
    assert answer["__typename"] == "EntitlementChanged", answer


def positions(items: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [decode_event_cursor(i["cursor"]) for i in items]


# --- the seed-004 flow ------------------------------------------------------------------------


async def test_portal_sees_every_link_ready_event_in_order_across_a_reconnect(
    live_app: LiveApp,
) -> None:
    gw = live_app
    # With the initial state, "from now" is exact: a change committed a moment ago is
    # in the state, not in the events (live-only starts where the broker is).
    portal = await gw.subscribe(REACHING, {"status": "LINK_READY", "initial": True}, as_=PORTAL)
    _delivery_id, (first, second) = await new_delivery(gw, lines=2)
    for entitlement_id in (first, second):
        await step(gw, "entitlementProvision", entitlement_id, PUBLISHER)
    await step(gw, "entitlementLinkReady", first, PORTAL)
    (seen,) = await portal.events(1)
    assert (seen["kind"], seen["entitlementId"], seen["actorRole"]) == (
        "ENTITLEMENT_LINK_READY",
        first,
        "portal",
    )
    await portal.close()  # the portal's connection drops

    # Meanwhile the LMS confirms the first, and the portal places the second link.
    await step(gw, "entitlementLinkReady", first, LMS)
    await step(gw, "entitlementLinkReady", second, PORTAL)

    resumed = await gw.subscribe(
        REACHING, {"status": "LINK_READY", "after": seen["cursor"]}, as_=PORTAL
    )
    missed = await resumed.take(2)
    assert [(m["entitlementId"], m["status"]) for m in missed] == [
        (first, "LINK_READY"),
        (second, "LINK_READY"),
    ]
    await step(gw, "entitlementLinkReady", second, LMS)  # live again, after the replay
    (live,) = await resumed.take(1)
    assert live["entitlementId"] == second
    received = [seen, *missed, live]
    assert positions(received) == sorted(set(positions(received)))
    in_table = await gw.stream_events(kind="ENTITLEMENT_LINK_READY")
    assert [events.position(r) for r in in_table[-4:]] == positions(received)
    await resumed.close()


async def test_every_party_sees_the_same_progress(live_app: LiveApp) -> None:
    gw = live_app
    delivery_id, (entitlement_id,) = await new_delivery(gw)
    watchers = {
        who: await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=who)
        for who in (SHOP, PUBLISHER, PORTAL, DASHBOARD)
    }
    await step(gw, "entitlementProvision", entitlement_id, PUBLISHER)
    await step(gw, "entitlementLinkReady", entitlement_id, PORTAL)
    seen = {who: await stream.events(2) for who, stream in watchers.items()}
    kinds = {who: [i["kind"] for i in items] for who, items in seen.items()}
    assert set(map(tuple, kinds.values())) == {
        ("ENTITLEMENT_PROVISIONED", "ENTITLEMENT_LINK_READY")
    }
    assert len({tuple(positions(items)) for items in seen.values()}) == 1
    for stream in watchers.values():
        await stream.close()


# --- resume: no gap, no duplicate -------------------------------------------------------------


async def test_resume_while_events_are_written_loses_and_repeats_nothing(
    live_app: LiveApp,
) -> None:
    gw = live_app
    delivery_id, (entitlement_id,) = await new_delivery(gw)
    for quantity in range(29, 24, -1):
        await lower(gw, entitlement_id, quantity)
    written = await gw.stream_events(delivery_id=int(delivery_id))
    resume_after = event_cursor(*events.position(written[1]))

    async def writer() -> None:
        for quantity in range(24, 9, -1):
            await lower(gw, entitlement_id, quantity)

    writing = asyncio.create_task(writer())
    stream = await gw.subscribe(
        PROGRESS, {"delivery": delivery_id, "after": resume_after}, as_=SHOP
    )
    await writing
    expected = [events.position(r) for r in await gw.stream_events(delivery_id=int(delivery_id))]
    expected = expected[2:]
    received = await stream.take(len(expected))
    assert positions(received) == expected
    await stream.close()


async def test_initial_state_then_the_events_after_it(live_app: LiveApp) -> None:
    gw = live_app
    delivery_id, ids = await new_delivery(gw, lines=3)
    await step(gw, "entitlementProvision", ids[0], PUBLISHER)
    stream = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=PORTAL)
    snapshot = await stream.take(3)
    assert {s["__typename"] for s in snapshot} == {"EntitlementSnapshot"}
    assert {s["entitlement"]["id"]: s["entitlement"]["status"] for s in snapshot} == {
        ids[0]: "PROVISIONED",
        ids[1]: "ENTITLED",
        ids[2]: "ENTITLED",
    }
    assert len({s["cursor"] for s in snapshot}) == 1
    await step(gw, "entitlementProvision", ids[1], PUBLISHER)
    (event,) = await stream.take(1)
    assert (event["kind"], event["entitlementId"]) == ("ENTITLEMENT_PROVISIONED", ids[1])
    assert decode_event_cursor(event["cursor"]) > decode_event_cursor(snapshot[0]["cursor"])
    await stream.close()

    # The snapshot's cursor resumes like any other: the provisioning comes again.
    again = await gw.subscribe(
        PROGRESS, {"delivery": delivery_id, "after": snapshot[0]["cursor"]}, as_=PORTAL
    )
    (replayed,) = await again.take(1)
    assert replayed["cursor"] == event["cursor"]
    await again.close()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"after": "not-a-cursor"}, "malformed event cursor"),
        ({"after": event_cursor(0, 987_654_321)}, "unknown cursor"),
        ({"after": event_cursor(0, 1), "initial": True}, "not both"),
    ],
)
async def test_a_bad_resume_is_a_clear_error(
    live_app: LiveApp, variables: dict[str, Any], message: str
) -> None:
    stream = await live_app.subscribe(REACHING, {"status": "LINK_READY", **variables}, as_=PORTAL)
    error = await stream.error()
    assert message in error.message
    assert error.extensions["code"] == "BAD_USER_INPUT"


async def test_a_cursor_older_than_the_replay_window_is_refused(live_app: LiveApp) -> None:
    gw = live_app
    async with gw.engine.begin() as conn:
        old = await conn.execute(
            insert(Event)
            .values(
                kind=EventKind.ENTITLEMENT_CREATED.value,
                status="ENTITLED",
                occurred_at=datetime.now(UTC) - timedelta(days=gw.settings.live_replay_days + 1),
            )
            .returning(Event.tx_id, Event.id)
        )
        cursor = event_cursor(*old.one())
    stream = await gw.subscribe(REACHING, {"status": "ENTITLED", "after": cursor}, as_=PORTAL)
    error = await stream.error()
    assert "cursor too old" in error.message
    assert "initialState" in error.message


async def test_delivery_progress_needs_exactly_one_thing_to_follow(live_app: LiveApp) -> None:
    stream = await live_app.subscribe(PROGRESS, {}, as_=SHOP)
    assert "exactly one of" in (await stream.error()).message
    stream = await live_app.subscribe(PROGRESS, {"delivery": "987654"}, as_=SHOP)
    assert "no delivery 987654" in (await stream.error()).message


async def test_an_unknown_school_is_a_clear_error(live_app: LiveApp) -> None:
    stream = await live_app.subscribe(PROGRESS, {"school": {"value": "99ZZ"}}, as_=PORTAL)
    error = await stream.error()
    assert error.extensions["code"] == "BAD_USER_INPUT"


# --- who receives what ------------------------------------------------------------------------


EXCHANGE = """mutation ($input: DataExchangeInput!) { %s(input: $input) { __typename } }"""
PORTAL_ENTITLEMENTS = {
    "school": {"value": "104A158"},
    "supplierCode": "demo-portal",
    "role": "PORTAL",
    "dataType": "ENTITLEMENTS",
}


async def exchange(gw: LiveApp, change: str, which: dict[str, Any]) -> None:
    await gw.data(EXCHANGE % change, {"input": which}, as_=("operator", "operator"))


async def test_a_revoked_subscriber_is_told_and_resumes_without_the_revoked_window(
    live_app: LiveApp,
) -> None:
    """Issue 13.3 and 13.4: the open subscription ends with CONSENT_REQUIRED (the
    school, the cursor to resume from) right after the last event it may have; an
    event of the revoked window is never handed over, not on resume either."""
    gw = live_app
    delivery_id, (entitlement_id,) = await new_delivery(gw)
    portal = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=PORTAL)
    shop = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=SHOP)
    await lower(gw, entitlement_id, 29)
    (before,) = await portal.events(1)
    await exchange(gw, "dataExchangeRevoke", PORTAL_ENTITLEMENTS)
    error = await portal.error()
    assert error.extensions["code"] == "CONSENT_REQUIRED"
    assert error.extensions["statusCode"] == 4
    assert error.extensions["school"] == "104A158"
    assert error.extensions["dataType"] == "ENTITLEMENTS"
    assert error.extensions["resume"] == before["cursor"]
    assert "104A158" in error.message
    await portal.close()
    await lower(gw, entitlement_id, 28)  # while revoked
    await exchange(gw, "dataExchangeActivate", PORTAL_ENTITLEMENTS)
    await lower(gw, entitlement_id, 27)
    shop_saw = await shop.events(3)
    assert [i["kind"] for i in shop_saw] == ["ENTITLEMENT_QUANTITY_LOWERED"] * 3
    resumed = await gw.subscribe(
        PROGRESS, {"delivery": delivery_id, "after": error.extensions["resume"]}, as_=PORTAL
    )
    # Ordered stream: 27 right after the resume point means 28 was withheld.
    (again,) = await resumed.events(1)
    assert again["cursor"] == shop_saw[2]["cursor"]
    await resumed.close()
    # A replay from before the revocation gives what live gave, and nothing of 28.
    replay = await gw.subscribe(
        PROGRESS, {"delivery": delivery_id, "after": shop_saw[0]["cursor"]}, as_=PORTAL
    )
    (only,) = await replay.events(1)
    assert only["cursor"] == shop_saw[2]["cursor"]
    await replay.close()
    await shop.close()


async def test_other_suppliers_events_are_never_sent(live_app: LiveApp) -> None:
    gw = live_app
    # demo-lms is a recipient at 09QQ, not at 11CD (that school activated no portal).
    lms = await gw.subscribe(REACHING, {"status": "ENTITLED", "initial": True}, as_=LMS)
    await new_delivery(gw, school="11CD")
    _delivery_id, (visible,) = await new_delivery(gw, school="09QQ")
    (first,) = await lms.events(1)
    assert first["entitlementId"] == visible
    await lms.close()


async def test_licence_activations_reach_the_portal(live_app: LiveApp) -> None:
    gw = live_app
    from db.models import Enrolment, Licence, Organisation, PersonIdentifier, Product

    portal = await gw.subscribe(ACTIVATIONS, {}, as_=PORTAL)
    # Stepping Stones 1: no demo licences yet, so a pupil gets a new one.
    _delivery_id, (entitlement_id,) = await new_delivery(gw, productId=ean13(3))
    await step(gw, "entitlementProvision", entitlement_id, PUBLISHER)
    await step(gw, "entitlementLinkReady", entitlement_id, PORTAL)
    async with create_sessionmaker(gw.engine)() as session:
        product = await session.scalar(
            select(Entitlement.product_id).where(Entitlement.id == int(entitlement_id))
        )
        code = await session.scalar(select(Product.code).where(Product.id == product))
        eck_id = await session.scalar(
            select(PersonIdentifier.value)
            .join(Enrolment, Enrolment.person_id == PersonIdentifier.person_id)
            .join(Organisation, Organisation.id == Enrolment.school_id)
            .where(
                Organisation.rio_id == "104A158",
                PersonIdentifier.scheme == "ECK_ID",
                PersonIdentifier.person_id.not_in(
                    select(Licence.person_id).where(
                        Licence.product_id == product, Licence.person_id.is_not(None)
                    )
                ),
            )
            .limit(1)
        )
    answer = await gw.data(
        """mutation ($input: LicenceActivateInput!) { licenceActivate(input: $input) {
            __typename ... on LicenceGranted { licence { id } }
            ... on MutationError { code field message } } }""",
        {
            "input": {
                "productId": code,
                "school": {"value": "104A158"},
                "person": {"eckId": eck_id, "identifiers": []},
            }
        },
        as_=PUBLISHER,
    )
    assert answer["licenceActivate"]["__typename"] == "LicenceGranted", answer
    (activation,) = await portal.take(1)
    assert activation["kind"] == "LICENCE_ACTIVATED"
    assert activation["licenceId"] == answer["licenceActivate"]["licence"]["id"]
    await portal.close()


# --- slow subscribers -------------------------------------------------------------------------


async def test_a_slow_subscriber_is_dropped_and_the_others_go_on(live_app: LiveApp) -> None:
    gw = live_app
    delivery_id, (entitlement_id,) = await new_delivery(gw)
    dropped, count = gw.broker.stats.dropped, gw.broker.subscriber_count
    slow = await gw.subscribe(REACHING, {"status": "ENTITLED"}, as_=SHOP)  # never reads on
    other = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=SHOP)
    # A burst of events for the slow one, several batches, more than its queue holds.
    await new_delivery(gw, lines=gw.settings.live_queue_size + 10)
    await lower(gw, entitlement_id, 29)
    (seen,) = await other.events(1)
    assert seen["kind"] == "ENTITLEMENT_QUANTITY_LOWERED"
    assert gw.broker.stats.dropped == dropped + 1
    assert gw.broker.subscriber_count == count + 1
    await slow.close()
    await other.close()


# --- the broker's bookkeeping -----------------------------------------------------------------


async def test_closed_subscriptions_leave_no_subscriber_behind(live_app: LiveApp) -> None:
    gw = live_app
    before = gw.broker.subscriber_count
    streams = [await gw.subscribe(REACHING, {"status": "BLOCKED"}, as_=SHOP) for _ in range(20)]
    assert gw.broker.subscriber_count == before + 20
    for stream in streams:
        await stream.close()
    assert gw.broker.subscriber_count == before


async def test_facts_for_a_batch_cost_the_same_statements_for_any_size(
    live_app: LiveApp,
) -> None:
    from tests.conftest import StatementCounter

    gw = live_app
    _delivery_id, ids = await new_delivery(gw, lines=30)
    rows = await gw.stream_events(kind="ENTITLEMENT_CREATED")
    mine = [r for r in rows if str(r.entitlement_id) in ids]
    counts = []
    for batch in (mine[:1], mine):
        async with gw.engine.connect() as conn:
            counter = StatementCounter(conn)
            session = AsyncSession(bind=conn)
            await visibility.load_facts(session, batch, today())
            counts.append(counter.count)
            counter.close()
            await session.close()
    assert counts[0] == counts[1] <= 5


# --- PostgreSQL: commit order, open transactions, NOTIFY, LISTEN ------------------------------


@pytest.fixture
def postgres_only(live_app: LiveApp) -> LiveApp:
    if not live_app.backend.is_postgres:
        pytest.skip("PostgreSQL behaviour")
    return live_app


async def _record(session: AsyncSession, entitlement_id: int, quantity: int) -> None:
    await record_events(
        session,
        Actor(None, "operator"),
        [
            EventRow(
                kind=EventKind.ENTITLEMENT_QUANTITY_LOWERED,
                school_id=None,
                status="ENTITLED",
                entitlement_id=entitlement_id,
                payload={"quantity": quantity},
            )
        ],
    )


async def test_an_event_written_after_another_commit_sorts_after_it(
    postgres_only: LiveApp,
) -> None:
    """The transaction id alone would put B first: B took its id before A started."""
    gw = postgres_only
    sessions = create_sessionmaker(gw.engine)
    async with sessions() as b, sessions() as a:
        await b.execute(text("SELECT pg_current_xact_id()"))  # B's id is the smaller one
        await a.execute(text("SELECT pg_current_xact_id()"))
        await _record(a, 1, 1)
        await a.commit()
        await _record(b, 1, 2)  # B writes after A committed
        await b.commit()
    written = [r for r in await gw.stream_events(entitlement_id=1) if r.payload]
    assert [r.payload["quantity"] for r in written[-2:]] == [1, 2]


async def test_notify_from_another_process_wakes_the_broker(postgres_only: LiveApp) -> None:
    import asyncpg

    gw = postgres_only
    before = gw.broker.stats.notifications
    url = gw.engine.url
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute("SELECT pg_notify($1, 'another-process')", events.CHANNEL)
    finally:
        await conn.close()
    await until(lambda: gw.broker.stats.notifications > before, "the notification")


async def test_a_lost_listen_connection_is_reconnected(postgres_only: LiveApp) -> None:
    gw = postgres_only
    broker = gw.broker
    await until(lambda: broker._listen_connection is not None, "LISTEN")
    listens = broker.stats.listens
    pid = broker._listen_connection.get_server_pid()
    async with gw.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await until(
        lambda: broker.stats.listens > listens and broker._listen_connection is not None,
        "LISTEN again",
    )
    assert broker.stats.listens == listens + 1
    # And it still delivers.
    stream = await gw.subscribe(REACHING, {"status": "ENTITLED", "initial": True}, as_=SHOP)
    _delivery_id, (entitlement_id,) = await new_delivery(gw)
    (seen,) = await stream.events(1)
    assert seen["entitlementId"] == entitlement_id
    await stream.close()


# --- the school's audit trail (issue 13.5) ----------------------------------------------------

TRAIL = """query { auditTrail(school: {value: "104A158"}, first: 100) {
  nodes { action objectType objectId role detail supplier { code } } } }"""


async def test_what_a_subscription_receives_is_in_the_schools_audit_trail(
    live_app: LiveApp,
) -> None:
    gw = live_app
    delivery_id, (entitlement_id,) = await new_delivery(gw, school="104A158")
    portal = await gw.subscribe(PROGRESS, {"delivery": delivery_id, "initial": True}, as_=PORTAL)
    (state,) = await portal.take(1)
    for quantity in (29, 28, 27):
        await lower(gw, entitlement_id, quantity)
    received = await portal.events(3)
    await portal.close()
    await gw.broker.audit.flush()
    trail = await gw.data(TRAIL, as_=("operator", "operator"))
    mine = [
        n
        for n in trail["auditTrail"]["nodes"]
        if n["action"] == "live.deliver" and n["supplier"]["code"] == "demo-portal"
    ]
    (last,) = [n for n in mine if n["detail"]["toCursor"] == received[-1]["cursor"]]
    rows = [n for n in mine if n["objectId"] == last["objectId"]]  # batches of one subscription
    assert {(n["objectType"], n["role"], n["detail"]["field"]) for n in rows} == {
        ("subscription", "portal", "deliveryProgress")
    }
    assert sum(n["detail"]["count"] for n in rows) == 4  # the state and three events
    first = min(decode_event_cursor(n["detail"]["fromCursor"]) for n in rows)
    assert first == events.decode_cut(state["cursor"]).at
