"""Metrics, request lines and traces (issue 17.1-17.3) through the real app."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import tracing
from gateway.logging import JsonFormatter
from tests.conftest import token_for
from tests.ops.conftest import ops_settings, running_app


def samples(text: str, name: str) -> list[Any]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def value(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_requests_are_counted_by_operation_role_and_outcome(database: str) -> None:
    name = f"Products{uuid.uuid4().hex[:8]}"
    query = {"query": f"query {name} {{ products(first: 1) {{ nodes {{ productId }} }} }}",
             "operationName": name}
    seller = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"}
    settings = ops_settings(database, rate_limit_per_second=0.001, rate_limit_burst=2)
    async with running_app(settings) as client:
        assert (await client.post("/graphql", json=query, headers=seller)).status_code == 200
        assert (await client.post("/graphql", json=query)).status_code == 401
        await client.post("/graphql", json=query, headers=seller)
        assert (await client.post("/graphql", json=query, headers=seller)).status_code == 429
        text = (await client.get("/metrics")).text
    assert value(text, "ketenpoort_requests_total", operation=name, role="seller",
                 outcome="ok") == 2
    assert value(text, "ketenpoort_requests_total", operation=name, role="anonymous",
                 outcome="refused", code="UNAUTHENTICATED") == 1
    assert value(text, "ketenpoort_requests_total", operation=name, role="seller",
                 outcome="refused", code="RATE_LIMITED") == 1
    assert value(text, "ketenpoort_rate_limit_refusals_total", role="seller") >= 1
    assert value(text, "ketenpoort_request_seconds_count", operation=name) == 4
    for gauge in ("ketenpoort_db_pool_connections", "ketenpoort_live_subscriptions",
                  "ketenpoort_audit_buffer_rows", "ketenpoort_live_broker_read_age_seconds",
                  "ketenpoort_websocket_connections"):
        assert samples(text, gauge), gauge


async def test_operation_names_cannot_grow_the_metrics_without_bound() -> None:
    from gateway import metrics

    metrics._operations.clear()
    labels = {metrics.operation_label(f"Op{i}") for i in range(metrics.MAX_OPERATIONS + 50)}
    assert len(labels) == metrics.MAX_OPERATIONS + 1
    assert "other" in labels
    assert metrics.operation_label("x" * 101) == "other"
    metrics._operations.clear()


async def test_metrics_need_the_token_when_one_is_set(database: str) -> None:
    async with running_app(ops_settings(database, metrics_token="s3cret")) as client:
        assert (await client.get("/metrics")).status_code == 401
        bad = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        good = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        assert "ketenpoort_requests_total" in good.text


async def test_metrics_on_their_own_port_are_not_on_the_api_port(database: str) -> None:
    async with running_app(ops_settings(database, metrics_port=1)) as client:
        assert (await client.get("/metrics")).status_code == 404


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def request_lines() -> Any:
    handler = Lines()
    logger = logging.getLogger("ketenpoort.request")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(previous)


async def test_one_json_line_per_request_without_query_variables_or_token(
    database: str, request_lines: list[str]
) -> None:
    token = token_for("demo-shop", "seller")
    query = {
        "query": "query Find($code: String!) { products(first: 1, filter: {nameContains: $code}) "
        "{ nodes { productId } } }",
        "operationName": "Find",
        "variables": {"code": "secret-variable-value"},
    }
    async with running_app(ops_settings(database, log_format="json")) as client:
        response = await client.post(
            "/graphql", json=query,
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-123"},
        )
        assert response.headers["x-request-id"] == "req-123"
        made = await client.post("/graphql", json=query, headers={"X-Request-ID": "bad id\n"})
        assert made.headers["x-request-id"] != "bad id\n"
        assert len(made.headers["x-request-id"]) == 32
    assert len(request_lines) == 2
    first, second = (json.loads(line) for line in request_lines)
    assert first["request_id"] == "req-123"
    assert first["supplier"] == "demo-shop"
    assert first["role"] == "seller"
    assert first["operation"] == "Find"
    assert first["status"] == response.status_code
    assert first["outcome"] in {"ok", "refused"}
    assert isinstance(first["duration_ms"], float)
    assert second["request_id"] == made.headers["x-request-id"]
    assert second["outcome"] == "refused"
    assert second["code"] == "UNAUTHENTICATED"
    for line in request_lines:
        assert "secret-variable-value" not in line
        assert token not in line
        assert "products(" not in line


@pytest.fixture
def spans() -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    yield exporter
    tracing.shutdown()


def test_tracing_is_off_unless_the_environment_asks() -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})


async def test_spans_per_request_operation_and_statement_with_the_request_id(
    postgres_database: str, spans: Any
) -> None:
    query = {"query": "query Few { products(first: 2) { nodes { productId } } }"}
    headers = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}",
               "X-Request-ID": "trace-me"}
    async with running_app(ops_settings(postgres_database)) as client:
        spans.clear()
        assert (await client.post("/graphql", json=query, headers=headers)).status_code == 200
    mine = [s for s in spans.get_finished_spans()
            if s.attributes.get("ketenpoort.request_id") == "trace-me"]
    names = [s.name for s in mine]
    assert "POST /graphql" in names
    assert "graphql query Few" in names
    statements = [s for s in mine if s.attributes.get("db.system") == "postgresql"
                  or "db.statement" in s.attributes or "db.query.text" in s.attributes]
    assert statements, names
    request = next(s for s in mine if s.name == "POST /graphql")
    operation = next(s for s in mine if s.name == "graphql query Few")
    assert operation.parent.span_id == request.context.span_id
    assert {s.context.trace_id for s in mine} == {request.context.trace_id}
    assert request.attributes["http.response.status_code"] == 200


async def test_an_unexpected_error_counts_as_error_not_as_refused(
    database: str, request_lines: list[str]
) -> None:
    """A failure the caller cannot help (here a table gone) is masked for the caller
    and counted and logged as `error`."""
    from sqlalchemy import text

    from db.engine import create_engine

    name = f"Broken{uuid.uuid4().hex[:8]}"
    query = {"query": f"query {name} {{ products(first: 1) {{ nodes {{ productId }} }} }}"}
    headers = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"}
    engine = create_engine(database)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE product RENAME TO product_gone"))
    finally:
        await engine.dispose()
    async with running_app(ops_settings(database)) as client:
        response = await client.post("/graphql", json=query, headers=headers)
        assert response.json()["errors"][0]["message"].startswith("Unexpected error")
        text_ = (await client.get("/metrics")).text
    assert value(text_, "ketenpoort_requests_total", operation=name, outcome="error") == 1
    (line,) = [json.loads(x) for x in request_lines if name in x]
    assert (line["outcome"], line["code"]) == ("error", None)


def test_production_refuses_an_unprotected_metrics_endpoint() -> None:
    from settings import Environment, Settings

    production = {
        "environment": Environment.PRODUCTION,
        "jwt_secret": "p" * 40,
        "graphiql": False,
        "introspection": False,
        "push_secret_key": "k" * 40,
    }
    with pytest.raises(ValueError, match="KETENPOORT_METRICS_TOKEN"):
        Settings(**production).check()
    Settings(**production, metrics_token="m" * 32).check()
    Settings(**production, metrics_port=9100).check()
    with pytest.raises(ValueError, match="KETENPOORT_LOG_FORMAT"):
        Settings(environment=Environment.TEST, log_format="xml").check()
