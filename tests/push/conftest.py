"""Fixtures for the push tests: the gateway app on its own committed database (the
`live` fixture of tests/conftest.py), a real receiver on loopback, a deliverer
driven step by step with an injectable clock."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from db.demo import ean13
from db.engine import create_sessionmaker
from push.deliverer import PushService, Worker
from settings import Settings
from tests.conftest import TEST_SETTINGS, Backend, LiveGateway, demo_database, token_for
from tests.push.receiver import Receiver, serve

SHOP = ("demo-shop", "seller")
PUBLISHER = ("demo-publisher", "licensor")
PORTAL = ("demo-portal", "portal")
SCHOOL_ADMIN = ("demo-school-admin", "school")
SIGNING_SECRET = "a-shared-signing-secret-of-40-characters!"
DIGITAL = ean13(2)  # Nieuw Nederlands 1, published by demo-publisher

# Only a guard against a hang: on a busy PostgreSQL server an event becomes
# readable once every older write transaction on the server has ended.
WAIT_ROUNDS = 1800

_refs = itertools.count()


def ref(prefix: str = "push") -> str:
    return f"{prefix}-{next(_refs)}-{uuid.uuid4().hex[:6]}"


class Clock:
    """The schedule's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@asynccontextmanager
async def gateway_app(backend: Backend, **settings: Any) -> AsyncIterator[LiveGateway]:
    """The app with its lifespan on a fresh database (as tests/conftest.py `live`)."""
    from app import create_app

    async with demo_database(backend.name, pool_size=20) as (_url, engine):
        app = create_app(
            TEST_SETTINGS.model_copy(update=settings), sessionmaker=create_sessionmaker(engine)
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as client,
        ):
            yield LiveGateway(backend, client, engine)


@pytest.fixture(scope="module")
async def live(backend: Backend) -> AsyncIterator[LiveGateway]:
    """The gateway without its own deliverer: these tests drive deliverers of their
    own step by step (with an injectable clock)."""
    async with gateway_app(backend, push_enabled=False) as gateway:
        yield gateway


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve() as found:
        yield found


def push_settings(**overrides: Any) -> Settings:
    values = {"push_timeout_seconds": 5.0, **overrides}
    return TEST_SETTINGS.model_copy(update=values)


@pytest.fixture
async def service_for(live: LiveGateway) -> AsyncIterator[Callable[..., Any]]:
    """Make deliverers on the live gateway's database (stopped afterwards)."""
    made: list[PushService] = []

    async def make(clock: Clock, **overrides: Any) -> PushService:
        service = PushService(
            push_settings(**overrides), create_sessionmaker(live.engine), clock=clock
        )
        await service.start_reading()
        made.append(service)
        return service

    yield make
    for service in made:
        await service.stop()


REGISTER = """
mutation ($input: PushEndpointInput!) {
  pushEndpointRegister(input: $input) {
    __typename
    ... on PushEndpointSaved { endpoint { id url auth hasSecret kinds batchSize } }
    ... on MutationError { code field message }
    ... on ValidationError { problems { code field message } }
  }
}"""


async def gql(
    live: LiveGateway, query: str, variables: dict[str, Any], as_: tuple[str, ...]
) -> Any:
    response = await live.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token_for(*as_)}"},
    )
    return response.json()


async def register(
    live: LiveGateway, url: str, as_: tuple[str, ...] = PUBLISHER, **fields: Any
) -> str:
    body = {"url": url, "auth": "SIGNED", "secret": SIGNING_SECRET, **fields}
    answer = await gql(live, REGISTER, {"input": body}, as_)
    payload = answer["data"]["pushEndpointRegister"]
    assert payload["__typename"] == "PushEndpointSaved", answer
    return str(payload["endpoint"]["id"])


SUBMIT = """
mutation ($input: DeliveryInput!) {
  deliverySubmit(input: $input) {
    __typename
    ... on DeliverySubmitted { delivery { id entitlements { id } } }
    ... on MutationError { code message }
  }
}"""


def delivery_body(lines: int = 1, school: str = "09QQ") -> dict[str, Any]:
    """A delivery of `lines` SCHOOL entitlements of a product of demo-publisher: one
    ENTITLEMENT_CREATED event each."""
    start = datetime.now(UTC).date()
    line = {
        "productId": DIGITAL,
        "variant": "SCHOOL",
        "quantity": 30,
        "startDate": start.isoformat(),
        "activationUntilDate": (start + timedelta(days=60)).isoformat(),
        "licenceTerm": {"durationMonths": 12},
    }
    return {
        "referenceId": ref("delivery"),
        "buyer": {"schoolId": school},
        "orderLines": [line] * lines,
    }


async def submit(live: LiveGateway, lines: int = 1, school: str = "09QQ") -> list[str]:
    """Submit `delivery_body`; the entitlement ids."""
    data = await live.execute(SUBMIT, {"input": delivery_body(lines, school)}, as_=SHOP)
    payload = data["deliverySubmit"]
    assert payload["__typename"] == "DeliverySubmitted", payload
    return [e["id"] for e in payload["delivery"]["entitlements"]]


async def queued(service: PushService, endpoint_id: str, count: int) -> Worker:
    """Read the stream until the endpoint has `count` events waiting (bounded)."""
    for _ in range(WAIT_ROUNDS):
        if int(endpoint_id) not in service.workers or not service.lease_valid():
            await service.refresh_leases()  # what the lease loop does
        worker = service.workers.get(int(endpoint_id))
        if worker is not None:
            if not worker.synced:
                await worker.catch_up()
            await service.pump()
            if len(worker.queue) >= count:
                return worker
        await asyncio.sleep(0.05)
    raise AssertionError(f"endpoint {endpoint_id} never had {count} events waiting")
