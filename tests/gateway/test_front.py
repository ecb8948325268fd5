"""The gateway's front (gateway/front.py): HTTP requests for /graphql go straight to
the GraphQL handler, ahead of Starlette's middleware and router, and keep every duty
of that stack: the request id, the request line, the metrics, the 413 for a body over
the limit, the 500 for an unexpected failure. Every other path (and an app under a
root path) is still Starlette's."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app import create_app
from gateway.front import Gateway
from gateway.logging import JsonFormatter
from settings import Environment, Settings
from tests.conftest import token_for

LIMIT = 2_000
TYPENAME = {"query": "{ __typename }"}


def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for('operator', 'operator')}"}


@pytest.fixture
def app() -> Gateway:
    # No database: `{ __typename }` and the refusals below never open a session.
    settings = Settings(
        environment=Environment.TEST, database_url="sqlite+aiosqlite://", max_body_bytes=LIMIT
    )
    return create_app(settings, sessionmaker=lambda: None)  # type: ignore[arg-type,return-value]


@pytest.fixture
def through_starlette(app: Gateway) -> list[str]:
    """The paths that went through Starlette's middleware stack."""
    seen: list[str] = []
    app.middleware_stack = app.build_middleware_stack()
    stack = app.middleware_stack

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await stack(scope, receive, send)

    app.middleware_stack = recorded
    return seen


@pytest.fixture
async def client(app: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as found:
        yield found


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def request_lines() -> Iterator[list[dict[str, Any]]]:
    handler = Lines()
    logger = logging.getLogger("ketenpoort.request")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(previous)


def counted(text: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ketenpoort_requests_total"
        and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_graphql_over_http_is_served_ahead_of_starlette(
    client: httpx.AsyncClient, through_starlette: list[str]
) -> None:
    answer = await client.post("/graphql", json=TYPENAME, headers=operator())
    assert answer.status_code == 200
    assert answer.json() == {"data": {"__typename": "Query"}}
    got = await client.get("/graphql", params={"query": "{ __typename }"}, headers=operator())
    assert got.json() == {"data": {"__typename": "Query"}}
    assert (await client.get("/livez")).status_code == 200
    assert through_starlette == ["/livez"]


async def test_the_front_keeps_the_request_id_the_line_and_the_metrics(
    client: httpx.AsyncClient, request_lines: list[dict[str, Any]]
) -> None:
    name = f"Front{uuid.uuid4().hex[:8]}"
    query = {"query": f"query {name} {{ __typename }}"}
    given = await client.post(
        "/graphql", json=query, headers={**operator(), "X-Request-ID": "front-1"}
    )
    made = await client.post("/graphql", json=query, headers={"X-Request-ID": "bad id"})
    assert given.headers["x-request-id"] == "front-1"
    assert re.fullmatch("[0-9a-f]{32}", made.headers["x-request-id"])
    first, second = request_lines
    assert first["request_id"] == "front-1"
    assert (first["method"], first["path"], first["status"]) == ("POST", "/graphql", 200)
    assert (first["operation"], first["outcome"], first["role"]) == (name, "ok", "operator")
    assert first["supplier"] == "operator"
    assert isinstance(first["duration_ms"], float)
    assert second["request_id"] == made.headers["x-request-id"]
    assert (second["role"], second["outcome"]) == ("anonymous", "ok")
    text = (await client.get("/metrics")).text
    assert counted(text, operation=name, role="operator", outcome="ok") == 1
    assert counted(text, operation=name, role="anonymous", outcome="ok") == 1


async def test_a_body_over_the_limit_is_the_same_413_on_graphql_as_elsewhere(
    client: httpx.AsyncClient,
    request_lines: list[dict[str, Any]],
    through_starlette: list[str],
) -> None:
    big = b'{"query": "' + b"x" * LIMIT + b'"}'
    declared = await client.post(
        "/graphql", content=big, headers={"Content-Type": "application/json"}
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    streamed = await client.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    elsewhere = await client.post(
        "/requestseed", content=big, headers={"Content-Type": "application/json"}
    )
    assert through_starlette == ["/requestseed"]
    for answer in (declared, streamed, elsewhere):
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {
            "errors": [
                {
                    "message": f"request body exceeds {LIMIT} bytes",
                    "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                }
            ]
        }
        assert answer.content == elsewhere.content
    assert "content-length" not in streamed.request.headers
    assert [(line["outcome"], line["code"]) for line in request_lines] == [
        ("refused", "PAYLOAD_TOO_LARGE")
    ] * 3


async def test_other_paths_are_still_starlettes_and_still_observed(
    client: httpx.AsyncClient,
    request_lines: list[dict[str, Any]],
    through_starlette: list[str],
) -> None:
    missing = await client.get("/graphqlx", headers={"X-Request-ID": "lost-1"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "lost-1"
    assert through_starlette == ["/graphqlx"]
    (line,) = request_lines
    assert (line["request_id"], line["outcome"], line["code"]) == (
        "lost-1",
        "refused",
        "NOT_FOUND",
    )


async def test_an_app_under_a_root_path_serves_graphql_through_starlette(
    app: Gateway, through_starlette: list[str]
) -> None:
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.post("/api/graphql", json=TYPENAME, headers=operator())
    assert answer.json() == {"data": {"__typename": "Query"}}
    assert through_starlette == ["/api/graphql"]


async def test_an_unexpected_failure_is_a_500_as_starlette_answers_it(
    app: Gateway, client: httpx.AsyncClient, request_lines: list[dict[str, Any]]
) -> None:
    class Broken:
        def verify(self, header: str | None) -> Any:
            raise RuntimeError("the verifier broke")

    app.graphql.verifier = Broken()
    front = await client.post("/graphql", json=TYPENAME, headers={"X-Request-ID": "broken-1"})
    handler, app.graphql = app.graphql, None  # the same handler behind Starlette's stack
    try:
        behind = await client.post("/graphql", json=TYPENAME)
    finally:
        app.graphql = handler
    assert front.status_code == behind.status_code == 500
    assert front.content == behind.content == b"Internal Server Error"
    assert front.headers["content-type"] == behind.headers["content-type"]
    assert front.headers["x-request-id"] == "broken-1"
    assert [(line["status"], line["outcome"]) for line in request_lines] == [(500, "error")] * 2
