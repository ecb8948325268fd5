"""Prometheus metrics (prometheus-client), correct with several uvicorn workers.

With `PROMETHEUS_MULTIPROC_DIR` set (`ketenpoort serve` sets it to a fresh folder
for its workers), every process writes its figures to memory-mapped files there
and `/metrics` adds them up over the live processes (prometheus-client's
multiprocess mode); without it, the figures are this process's.

What is counted, and where:
* requests by operation name, role and outcome (ok, refused with its code, error),
  and their duration, by the request observer (gateway/observe.py); the names of
  operations are the clients' own, so at most `MAX_OPERATIONS` distinct ones are
  kept per process, later ones count as "other";
* rate-limit refusals (the requests refused with RATE_LIMITED);
* open websocket connections (observer) and live subscriptions, database pool
  use, the audit buffer's depth, the live broker's read age, sampled once a second
  by `Sampler`;
* live lag: now minus the event's `occurredAt` when the broker hands it to its
  subscribers, once per event and process (the broker's `on_fan_out` hook);
* push (push/deliverer.py): events per endpoint kind (the roles its supplier
  receives in) and outcome, the lag from `occurredAt` to the receiver's answer,
  the longest wait of an undelivered event and the endpoints by state, sampled
  once a second by the process that holds their leases.

`/metrics` answers only with `Settings.metrics_token` as a bearer token when one is
set; `Settings.metrics_port` serves the same on a port of its own instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MAX_OPERATIONS = 200
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "ketenpoort_requests",
    "Requests by GraphQL operation name, the caller's role and the outcome.",
    ["operation", "role", "outcome", "code"],
)
REQUEST_SECONDS = Histogram(
    "ketenpoort_request_seconds",
    "Time from the request's arrival to the end of its response, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
COMPILED_READS = Counter(
    "ketenpoort_compiled_reads",
    "Query operations answered from one compiled statement, or by the resolvers after all "
    "(compiler/: fallback).",
    ["outcome"],
)
RATE_LIMITED = Counter(
    "ketenpoort_rate_limit_refusals", "Requests refused by the rate limit (429).", ["role"]
)
WEBSOCKETS = Gauge(
    "ketenpoort_websocket_connections", "Open websocket connections.", multiprocess_mode="livesum"
)
SUBSCRIPTIONS = Gauge(
    "ketenpoort_live_subscriptions", "Live subscriptions registered with the broker.",
    multiprocess_mode="livesum",
)
POOL = Gauge(
    "ketenpoort_db_pool_connections",
    "SQLAlchemy pool connections: checked out (in use) and open (idle + in use).",
    ["state"],
    multiprocess_mode="livesum",
)
AUDIT_BUFFER = Gauge(
    "ketenpoort_audit_buffer_rows", "Read-audit rows waiting to be written.",
    multiprocess_mode="livesum",
)
BROKER_READ_AGE = Gauge(
    "ketenpoort_live_broker_read_age_seconds",
    "Seconds since the live broker last completed a read of the event table (its "
    "cursor lag: events committed since then are not delivered yet).",
    multiprocess_mode="livemax",
)
LIVE_LAG = Histogram(
    "ketenpoort_live_lag_seconds",
    "Now minus the event's occurredAt when the broker hands it to its subscribers.",
    buckets=LAG_BUCKETS,
)
LIVE_EVENTS = Counter("ketenpoort_live_events", "Events the live broker read and fanned out.")

PUSH_EVENTS = Counter(
    "ketenpoort_push_events",
    "Events pushed to suppliers' endpoints, by the endpoint's kind (the roles its supplier "
    "receives in) and outcome: delivered (status 0), refused (another status), failed (in an "
    "attempt that found the receiver unavailable; sent again on the retry schedule).",
    ["kind", "outcome"],
)
PUSH_LAG = Histogram(
    "ketenpoort_push_lag_seconds",
    "The event's occurredAt to its receiver's answer, per event answered.",
    buckets=LAG_BUCKETS,
)
PUSH_WAITING = Gauge(
    "ketenpoort_push_waiting_seconds",
    "How long the oldest undelivered event of any endpoint this process delivers has "
    "waited (0: none waits).",
    multiprocess_mode="livemax",
)
PUSH_ENDPOINTS = Gauge(
    "ketenpoort_push_endpoints",
    "Endpoints whose lease this process holds, by state: sending (up to date or catching "
    "up), retrying (waiting for the next attempt), paused (the 24-hour pause).",
    ["state"],
    multiprocess_mode="livesum",
)
PUSH_STATES = ("sending", "retrying", "paused")

_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if name in _operations:
        return name
    if len(_operations) >= MAX_OPERATIONS or len(name) > 100:
        return "other"
    _operations.add(name)
    return name


#: The labelled children per (operation, role, outcome, code): `labels()` takes a lock
#: and checks its arguments on every call. Bounded as the labels are.
_request_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}


def observe_request(
    operation: str | None, role: str, outcome: str, code: str | None, seconds: float
) -> None:
    label = operation_label(operation)
    key = (label, role, outcome, code or "")
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (REQUESTS.labels(*key), REQUEST_SECONDS.labels(label))
    children[0].inc()
    children[1].observe(seconds)
    if code == "RATE_LIMITED":
        RATE_LIMITED.labels(role).inc()


def observe_fan_out(rows: list[Any]) -> None:
    """The broker's hook: one lag sample per event."""
    now = datetime.now(UTC)
    for row in rows:
        occurred = row.occurred_at
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        LIVE_LAG.observe(max(0.0, (now - occurred).total_seconds()))
    LIVE_EVENTS.inc(len(rows))


def observe_push_answered(kind: str, delivered: int, refused: int, lags: list[float]) -> None:
    """A batch answered by its receiver; `lags` in seconds, one per event."""
    if delivered:
        PUSH_EVENTS.labels(kind, "delivered").inc(delivered)
    if refused:
        PUSH_EVENTS.labels(kind, "refused").inc(refused)
    for lag in lags:
        PUSH_LAG.observe(max(0.0, lag))


def observe_push_failed(kind: str, events: int) -> None:
    """An attempt that found the receiver unavailable, with the events it carried."""
    PUSH_EVENTS.labels(kind, "failed").inc(events)


def observe_push_state(waiting_seconds: float, states: dict[str, int]) -> None:
    PUSH_WAITING.set(max(0.0, waiting_seconds))
    for state in PUSH_STATES:
        PUSH_ENDPOINTS.labels(state).set(states.get(state, 0))


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY


def exposition() -> bytes:
    return generate_latest(registry())


def metrics_route(settings: Any) -> list[Route]:
    """`/metrics` on the API port, unless it has a port of its own."""
    if settings.metrics_port is not None:
        return []
    expected = f"Bearer {settings.metrics_token}".encode() if settings.metrics_token else None

    async def metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return Response("metrics need the metrics token\n", status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", metrics)]


class Sampler:
    """Once a second, this process's gauges: pool use, subscriptions, audit buffer,
    broker read age. Cheap reads of in-memory counters, no database work."""

    def __init__(self, engine: Callable[[], Any], broker: Callable[[], Any],
                 audit_buffer: Callable[[], Any], interval: float = 1.0) -> None:
        self.engine = engine
        self.broker = broker
        self.audit_buffer = audit_buffer
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._reads = -1
        self._reads_at = time.monotonic()

    def sample(self) -> None:
        engine = self.engine()
        pool = getattr(getattr(engine, "sync_engine", None), "pool", None)
        if pool is not None and hasattr(pool, "checkedout"):
            POOL.labels("checked_out").set(pool.checkedout())
            POOL.labels("open").set(pool.checkedout() + pool.checkedin())
        broker = self.broker()
        if broker is not None:
            SUBSCRIPTIONS.set(broker.subscriber_count)
            now = time.monotonic()
            if broker.stats.reads != self._reads:
                self._reads, self._reads_at = broker.stats.reads, now
            BROKER_READ_AGE.set(now - self._reads_at)
        buffer = self.audit_buffer()
        if buffer is not None:
            AUDIT_BUFFER.set(buffer._waiting)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def serve_on_port(port: int, host: str = "127.0.0.1") -> None:
    """`ketenpoort serve`'s supervisor: the multiprocess figures on a port of their own."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=registry())


def mark_process_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
