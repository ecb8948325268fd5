"""OpenTelemetry tracing: off unless the standard `OTEL_*` environment variables
ask for it.

It is on when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an
OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and `OTEL_SDK_DISABLED` is not true. The
SDK reads everything else itself: service name and resource attributes, sampler,
batch sizes, endpoint and headers of the exporter.

Spans: one per HTTP request and websocket connection (gateway/observe.py, with the
caller's `traceparent` as parent), one per GraphQL operation (the schema
extension in gateway/observe.py), one per database statement (asyncpg's
instrumentation: SQLAlchemy's asyncpg dialect and db/pg.py both go through it).
Every span started during a request carries its request id (`RequestIdProcessor`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gateway.logging import REQUEST_ID

log = logging.getLogger("ketenpoort.tracing")

tracer: Any = None  # the gateway's tracer while tracing is on


def wanted(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


class RequestIdProcessor:
    """Puts the current request id on every span as it starts."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            span.set_attribute("ketenpoort.request_id", request_id)

    def on_end(self, span: Any) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _exporters() -> list[Any]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")
    found: list[Any] = []
    for name in (n.strip() for n in names):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            found.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            found.append(ConsoleSpanExporter())
        elif name:
            log.warning("OTEL_TRACES_EXPORTER %r is not supported here (otlp, console)", name)
    return found


def configure(exporter: Any = None) -> Any:
    """Switch tracing on (once per process): a tracer provider from the
    environment, the asyncpg instrumentation, and the gateway's tracer. `exporter`
    replaces the configured ones (the tests pass an in-memory exporter)."""
    global tracer
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create(
        {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "ketenpoort"}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(RequestIdProcessor())  # type: ignore[arg-type]
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for found in _exporters():
            provider.add_span_processor(BatchSpanProcessor(found))
    instrumentor = AsyncPGInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)
    tracer = provider.get_tracer("ketenpoort")
    return provider


def configure_from_environment() -> None:
    if tracer is None and wanted():
        configure()
        log.info("tracing on (OpenTelemetry, exporter %s)",
                 os.environ.get("OTEL_TRACES_EXPORTER", "otlp"))


def shutdown() -> None:
    """Stop tracing (tests): the asyncpg instrumentation off, no tracer."""
    global tracer
    if tracer is None:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().uninstrument()
    tracer = None
