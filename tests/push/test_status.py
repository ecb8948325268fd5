"""What the push shows of itself: `lagSeconds` (the wait of the oldest event not
yet delivered, also while its request is still out or after the queue was dropped
from memory) and the Prometheus figures (gateway/metrics.py), against a real
receiver on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
from prometheus_client import REGISTRY

from push import deliverer
from tests.conftest import LiveGateway
from tests.push.conftest import Clock, queued, register, submit
from tests.push.receiver import Receiver
from tests.push.test_delivery import status_of, stored
from tests.waiting import until_async


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_lag_shows_the_wait_of_a_request_not_answered_yet(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock, monkeypatch
) -> None:
    monkeypatch.setattr(deliverer, "MARK_WAITING_AFTER", 0.0)
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    oldest = worker.queue[0].occurred_at
    receiver.hold = asyncio.Event()
    step = asyncio.create_task(worker.step())
    await until_async(lambda: receiver.requests, "the request to be out")
    assert service.mark_waiting(deliverer.utc_now()) == 1  # what the sampler does
    async def pending() -> bool:
        return (await stored(live, endpoint_id)).pending_since is not None

    await until_async(pending, "the endpoint marked waiting")
    row = await stored(live, endpoint_id)
    assert row.pending_since is not None
    assert row.pending_since.replace(tzinfo=None) == oldest.replace(tzinfo=None)
    assert (await status_of(live, endpoint_id))["status"]["lagSeconds"] > 0
    assert service.mark_waiting(deliverer.utc_now()) == 0  # shown: not written again

    receiver.hold.set()
    assert await asyncio.wait_for(step, 30) == "sent"
    assert (await status_of(live, endpoint_id))["status"]["lagSeconds"] == 0
    assert (await stored(live, endpoint_id)).pending_since is None


async def test_a_wait_under_the_threshold_is_not_written(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    since = worker.waiting_since()
    assert since is not None
    since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    threshold = timedelta(seconds=deliverer.MARK_WAITING_AFTER)
    service.mark_waiting(since + threshold - timedelta(milliseconds=1))
    assert worker.stored_pending is None  # waited just under the threshold
    service.mark_waiting(since + threshold)
    assert worker.stored_pending == worker.waiting_since()


async def test_lag_survives_dropping_the_queue_while_the_receiver_is_away(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock, push_queue_limit=2)
    await submit(live, lines=1)
    worker = await queued(service, endpoint_id, 1)
    oldest = worker.queue[0].occurred_at
    receiver.fail_next = 100
    assert await worker.step() == "failed"
    await submit(live, lines=3)  # more than the queue may hold: dropped from memory
    async def dropped() -> bool:
        await service.pump()
        return not worker.synced

    await until_async(dropped, "the queue dropped from memory")
    assert not worker.synced
    assert not worker.queue
    assert worker.waiting_since() == oldest
    assert service.sample_metrics()[1]["retrying"] == 1
    # The secret cannot be read (a rotated key): a failure without reading the backlog.
    worker.secret_problem = "the secret cannot be decrypted"
    clock.advance(minutes=1)
    assert await worker.step() == "failed"
    row = await stored(live, endpoint_id)
    assert row.pending_since is not None
    assert row.pending_since.replace(tzinfo=None) == oldest.replace(tzinfo=None)
    assert (await status_of(live, endpoint_id))["status"]["lagSeconds"] > 0


async def test_metrics_count_delivered_refused_and_failed_events_per_endpoint_kind(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    endpoint_id = await register(live, receiver.url)  # demo-publisher: a licensor
    kind = "licensor"
    before = {
        outcome: sample("ketenpoort_push_events_total", kind=kind, outcome=outcome)
        for outcome in ("delivered", "refused", "failed")
    }
    lags = sample("ketenpoort_push_lag_seconds_count")
    service = await service_for(clock)
    await submit(live, lines=3)
    worker = await queued(service, endpoint_id, 3)
    assert worker.kind == kind
    receiver.fail_next = 1
    assert await worker.step() == "failed"
    receiver.refuse[worker.queue[0].body["id"]] = (5, "school unknown")
    clock.advance(minutes=1)
    assert await worker.step() == "sent"

    def delta(outcome: str) -> float:
        found = sample("ketenpoort_push_events_total", kind=kind, outcome=outcome)
        return found - before[outcome]

    assert (delta("delivered"), delta("refused"), delta("failed")) == (2, 1, 3)
    assert sample("ketenpoort_push_lag_seconds_count") - lags == 3
    # Every endpoint of the module's database is leased by this service: count them all.
    waiting, states = service.sample_metrics()
    assert sum(states.values()) == len(service.workers)
    retrying = [w for w in service.workers.values() if w.next_attempt_at is not None]
    assert states["retrying"] == len(retrying)
    assert worker not in retrying
    assert sample("ketenpoort_push_endpoints", state="sending") == states["sending"]
    assert sample("ketenpoort_push_waiting_seconds") == waiting


@pytest.mark.parametrize("figure", ["ketenpoort_push_events_total", "ketenpoort_push_lag_seconds"])
async def test_the_push_figures_are_in_metrics(live: LiveGateway, figure: str) -> None:
    response = await live.client.get("/metrics")
    assert response.status_code == 200
    assert f"# TYPE {figure.removesuffix('_total')}" in response.text
