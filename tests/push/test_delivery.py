"""Delivery to a real receiver on loopback, on SQLite and PostgreSQL: the envelope,
the signature, per-event answers, the retry schedule walked with an injectable
clock, ordering behind a failed batch, OAuth 2.0 tokens, 401/403 answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import timedelta

from sqlalchemy import select

from db import push as store
from push.client import SIGNATURE_HEADER, TIMESTAMP_HEADER
from push.envelope import message_id
from tests.conftest import LiveGateway
from tests.push.conftest import (
    PUBLISHER,
    SIGNING_SECRET,
    Clock,
    gql,
    queued,
    register,
    submit,
)
from tests.push.receiver import Receiver

STATUS = """
query ($id: ID!) {
  pushEndpoint(id: $id) {
    status {
      lastSuccessAt lastError nextAttemptAt pausedUntil failures lagSeconds
      deliveredEvents refusedEvents failedAttempts delivering
    }
    refusals { eventId messageId status statusMessage httpStatus }
  }
}"""


async def status_of(live: LiveGateway, endpoint_id: str) -> dict:
    answer = await gql(live, STATUS, {"id": endpoint_id}, PUBLISHER)
    return answer["data"]["pushEndpoint"]


async def stored(live: LiveGateway, endpoint_id: str) -> store.PushEndpoint:
    from db.engine import create_sessionmaker

    async with create_sessionmaker(live.engine)() as session:
        row = await session.get(store.PushEndpoint, int(endpoint_id))
        assert row is not None
        return row


async def test_events_arrive_in_the_chains_envelope_signed(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock)
    entitlements = await submit(live, lines=2)
    worker = await queued(service, endpoint_id, 2)
    assert await worker.step() == "sent"

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    batch = request.events
    assert [e["objectId"] for e in batch] == entitlements
    first = batch[0]
    assert first["type"] == "mp.Entitlement"
    assert first["schemaVersion"] == "1.3.0"
    assert first["isDeleteEvent"] is False
    assert uuid.UUID(first["id"]).version == 5
    assert first["created"].endswith("Z")
    data = first["data"]
    assert data["entitlementReferenceId"] == first["id"]
    assert data["entitlement"]["entitlementId"] == entitlements[0]
    assert data["entitlement"]["status"] == "entitled"
    assert data["entitlement"]["entitlementType"] == "school"
    assert data["entitlement"]["entitlee"]["quantity"] == 30
    # The signature covers the timestamp and the exact body.
    stamp = request.headers[TIMESTAMP_HEADER.lower()]
    expected = hmac.new(
        SIGNING_SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers[SIGNATURE_HEADER.lower()] == f"sha256={expected}"
    assert "authorization" not in request.headers

    status = await status_of(live, endpoint_id)
    assert status["status"]["deliveredEvents"] == 2
    assert status["status"]["refusedEvents"] == 0
    assert status["status"]["lastSuccessAt"] is not None
    assert status["status"]["lagSeconds"] == 0
    row = await stored(live, endpoint_id)
    assert (row.cursor_tx, row.cursor_id) == worker.cursor
    assert not worker.queue


async def test_a_refused_event_is_recorded_and_not_sent_again(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock)
    await submit(live, lines=3)
    worker = await queued(service, endpoint_id, 3)
    refused = worker.queue[1]
    receiver.refuse[refused.body["id"]] = (5, "school unknown")
    assert await worker.step() == "sent"
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    assert await worker.step() == "sent"

    ids = receiver.ids()
    assert ids.count(refused.body["id"]) == 1  # not retried
    assert len(ids) == 4
    status = await status_of(live, endpoint_id)
    assert status["status"]["deliveredEvents"] == 4
    assert status["status"]["refusedEvents"] == 1
    assert status["refusals"] == [
        {
            "eventId": str(refused.event_id),
            "messageId": refused.body["id"],
            "status": 5,
            "statusMessage": "school unknown",
            "httpStatus": 200,
        }
    ]
    assert message_id(refused.event_id) == refused.body["id"]


async def test_the_retry_rule_1_min_5_min_1_hour_then_a_24_hour_pause_then_resume(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    receiver.fail_next = 100
    start = clock.now

    async def attempt_at(**offset: float) -> str:
        clock.now = start
        clock.advance(**offset)
        return await worker.step()

    assert await attempt_at() == "failed"  # the first attempt
    assert len(receiver.requests) == 1
    row = await stored(live, endpoint_id)
    assert row.failures == 1
    assert row.paused_until is None
    # Not before the minute is over; nothing is sent while waiting.
    assert await attempt_at(seconds=59) == "waiting"
    assert await attempt_at(minutes=1) == "failed"
    assert await attempt_at(minutes=1, seconds=299) == "waiting"
    assert await attempt_at(minutes=6) == "failed"
    assert await attempt_at(minutes=6, seconds=3599) == "waiting"
    assert await attempt_at(minutes=66) == "failed"  # the fourth: pause for 24 hours
    row = await stored(live, endpoint_id)
    assert row.failures == 4
    assert row.paused_until is not None
    status = await status_of(live, endpoint_id)
    assert status["status"]["pausedUntil"] is not None
    assert status["status"]["failedAttempts"] == 4
    assert status["status"]["lastError"] == "HTTP 503"
    assert await attempt_at(minutes=66, hours=23, seconds=3599) == "waiting"
    assert len(receiver.requests) == 4
    # After the pause the rule starts again: one attempt, then 1 minute.
    assert await attempt_at(minutes=66, hours=24) == "failed"
    assert await attempt_at(minutes=66, hours=24, seconds=59) == "waiting"
    receiver.fail_next = 0
    assert await attempt_at(minutes=67, hours=24) == "sent"
    # Every attempt carried the same event with the same id.
    assert len(set(receiver.ids())) == 1
    assert len(receiver.requests) == 6
    row = await stored(live, endpoint_id)
    assert row.failures == 0
    assert row.next_attempt_at is None
    assert row.paused_until is None


async def test_a_batch_that_cannot_be_delivered_holds_back_what_comes_after(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url, batchSize=1)
    service = await service_for(clock)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    receiver.fail_next = 1
    assert await worker.step() == "failed"
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 2)
    assert await worker.step() == "waiting"
    clock.advance(minutes=1)
    assert await worker.step() == "sent"
    assert await worker.step() == "sent"
    sent = [r.events[0]["id"] for r in receiver.requests]
    # The failed one first (twice), then the later one: nothing overtook it.
    assert sent[0] == sent[1] != sent[2]
    assert len(sent) == 3


async def test_unavailable_means_5xx_429_timeouts_and_refused_connections(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock, push_timeout_seconds=0.5)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    receiver.fail_next, receiver.fail_status, receiver.retry_after = 1, 429, "600"
    assert await worker.step() == "failed"
    # 429 with Retry-After longer than the minute: the receiver's wish is kept.
    assert worker.next_attempt_at == clock.now + timedelta(seconds=600)
    clock.advance(seconds=600)
    receiver.delay = 2.0  # slower than the timeout
    assert await worker.step() == "failed"
    assert "timeout" in (await stored(live, endpoint_id)).last_error
    receiver.delay = 0
    clock.advance(minutes=5)
    port = receiver.port
    receiver.port = _closed_port()
    worker.target = worker.target.__class__(**{**worker.target.__dict__, "url": receiver.url})
    assert await worker.step() == "failed"
    assert "Connect" in (await stored(live, endpoint_id)).last_error
    receiver.port = port
    worker.target = worker.target.__class__(**{**worker.target.__dict__, "url": receiver.url})
    clock.advance(hours=1)
    assert await worker.step() == "sent"


def _closed_port() -> int:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


async def test_a_redirect_is_not_followed_and_a_huge_answer_is_not_read(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock, push_max_response_bytes=10_000)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    receiver.redirect_to = "http://127.0.0.1:1/elsewhere"
    assert await worker.step() == "failed"
    assert "redirect" in (await stored(live, endpoint_id)).last_error
    assert len(receiver.requests) == 1  # nothing went to the redirect's target
    receiver.redirect_to = None
    receiver.oversize = 50_000
    clock.advance(minutes=1)
    assert await worker.step() == "failed"
    assert "larger than 10000 bytes" in (await stored(live, endpoint_id)).last_error
    receiver.oversize = 0
    clock.advance(minutes=5)
    assert await worker.step() == "sent"


async def test_oauth_client_credentials_token_is_fetched_cached_and_renewed_on_401(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(
        live,
        receiver.url,
        auth="OAUTH2",
        secret=receiver.client_secret,
        tokenUrl=receiver.token_url,
        clientId=receiver.client_id,
        scope="mp.entitlement",
    )
    service = await service_for(clock)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    assert await worker.step() == "sent"
    assert receiver.requests[-1].headers["authorization"] == "Bearer token-0"
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    assert await worker.step() == "sent"
    assert receiver.token_requests == 1  # cached
    # The receiver rotates its keys: the old token gets 401; a new one is fetched.
    receiver.valid_from_token = 1
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    assert await worker.step() == "sent"
    assert receiver.token_requests == 2
    assert receiver.requests[-1].headers["authorization"] == "Bearer token-1"
    assert len(receiver.ids()) == 4  # one refused with 401, then the same again
    # Credentials the token server refuses: unavailable, nothing lost.
    receiver.client_secret = "rotated-on-the-other-side-0123456789"
    receiver.valid_from_token = 2
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    assert await worker.step() == "failed"
    assert "token server answered HTTP 401" in (await stored(live, endpoint_id)).last_error
    assert len(worker.queue) == 1


async def test_403_with_answers_per_event_records_consent_required(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock)
    await submit(live, lines=2)
    worker = await queued(service, endpoint_id, 2)
    for pending in worker.queue:
        receiver.refuse[pending.body["id"]] = (4, "consent required")
    receiver.status_code = 403
    assert await worker.step() == "sent"
    status = await status_of(live, endpoint_id)
    assert status["status"]["refusedEvents"] == 2
    assert {r["status"] for r in status["refusals"]} == {4}
    assert {r["httpStatus"] for r in status["refusals"]} == {403}
    # A 400 without answers per event: every event of the batch is refused (status 1).
    receiver.status_code, receiver.answer_per_event = 400, False
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    assert await worker.step() == "sent"
    status = await status_of(live, endpoint_id)
    assert status["refusals"][0]["status"] == 1
    assert status["refusals"][0]["httpStatus"] == 400
    assert status["status"]["failedAttempts"] == 0


async def test_answers_are_stored_per_event(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    from db.engine import create_sessionmaker

    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock)
    await submit(live, lines=2)
    worker = await queued(service, endpoint_id, 2)
    events = [p.event_id for p in worker.queue]
    assert await worker.step() == "sent"
    async with create_sessionmaker(live.engine)() as session:
        rows = list(
            await session.scalars(
                select(store.PushAnswer).where(store.PushAnswer.endpoint_id == int(endpoint_id))
            )
        )
    assert sorted(r.event_id for r in rows) == sorted(events)
    assert {r.status for r in rows} == {0}
    assert all(json.loads(json.dumps(r.message_id)) == message_id(r.event_id) for r in rows)


async def test_the_gateways_own_deliverer_pushes_without_being_driven(backend) -> None:
    """The app's lifespan runs a deliverer (real clock, its own lease and reader)."""
    import asyncio

    from tests.push.conftest import gateway_app
    from tests.push.receiver import serve

    async with gateway_app(backend, push_lease_seconds=3.0) as gateway, serve() as receiver:
        await register(gateway, receiver.url)
        entitlements = await submit(gateway, lines=2)
        for _ in range(1800):  # bounded; on PostgreSQL older writers may hold events back
            if [e["objectId"] for e in receiver.events()] == entitlements:
                break
            await asyncio.sleep(0.05)
        assert [e["objectId"] for e in receiver.events()] == entitlements
