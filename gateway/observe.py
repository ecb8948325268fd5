"""The request's life as operators see it: one ASGI middleware, outermost, and one
schema extension, feeding the request line (gateway/logging.py), the metrics
(gateway/metrics.py) and the spans (gateway/tracing.py) from the same facts.

The middleware gives every HTTP request an id (the caller's `X-Request-ID` when it
is a sane token, else a new one; echoed in the response), times it, and after the
response reads what the GraphQL layer noted on the request's context: operation
name, outcome (ok, refused with the error's code, error for a masked unexpected
error) and the caller. Requests that never reach GraphQL (a 413, a 404) are
classified by their status. Probes and /metrics are not logged or counted.

Websocket connections are counted while open (`open_websockets`, also what a
graceful shutdown waits on) and traced as one span per connection.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from domain.privacy import contains_pgn, redact_pgns
from gateway import logging as request_logging
from gateway import metrics, tracing
from gateway.logging import REQUEST_ID

QUIET = ("/livez", "/readyz", "/healthz", "/metrics", "/graphiql-assets")
SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}
MASKED = "Unexpected error"

open_websockets = 0
#: Set while no websocket is open (what a graceful shutdown waits for).
no_websockets = asyncio.Event()
no_websockets.set()


#: A request id made here: 16 random hex digits drawn once per process, then a count
#: (32 hex digits in all, unique across processes and restarts, without a system call).
_IDS = itertools.count(1)
_PROCESS = os.urandom(8).hex()


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if SANE_ID.fullmatch(text):
                return text
            break
    return f"{_PROCESS}{next(_IDS):016x}"


def _role(context: Any) -> tuple[str | None, str]:
    """(supplier, role label) of the caller as far as the request got."""
    principal = getattr(context, "principal", None)
    if principal is not None:
        roles = principal.roles
        supplier = principal.supplier_code
    else:
        caller = getattr(context, "caller", None)
        if caller is None:
            return None, "anonymous"
        roles, supplier = caller.roles, caller.supplier_code
    try:
        return supplier, _role_label(roles)
    except TypeError:  # roles that cannot be hashed: spelled out each time
        return supplier, _role_label.__wrapped__(roles)


@functools.lru_cache(maxsize=256)
def _role_label(roles: Any) -> str:
    if any(getattr(r, "value", r) == "operator" for r in roles):
        return "operator"
    return "+".join(sorted(getattr(r, "value", str(r)) for r in roles)) or "none"


class Observation:
    """One HTTP request as the observer sees it: its id (set as the context variable
    every log record reads), its start, the span when tracing is on, and the status
    its answer started with. `send` echoes the id on the answer; `finish` writes the
    metrics, the request line and the span's end. The middleware below and the
    gateway's front for /graphql (gateway/front.py) both observe through it."""

    __slots__ = ("_send", "header", "request_id", "span", "started", "status", "token")

    def __init__(self, scope: Scope, send: Send) -> None:
        self.request_id = request_id = request_id_of(scope)
        self.token = REQUEST_ID.set(request_id)
        self.started = time.perf_counter()
        self.status = 0  # no answer started yet (a failure then is a 500)
        self.header = (b"x-request-id", request_id.encode())
        self._send = send
        self.span = (
            RequestObserver._start_span(scope, request_id) if tracing.tracer is not None else None
        )

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), self.header]
        await self._send(message)

    def finish(self, scope: Scope) -> None:
        status = self.status or 500
        seconds = time.perf_counter() - self.started
        # Taken out of the scope: the context holds the request, which holds the scope,
        # and that cycle would otherwise wait for the garbage collector.
        context = (scope.get("state") or {}).pop("gateway_context", None)
        noted = getattr(context, "observed", None)
        if noted is not None:
            operation, outcome, code = noted
            if outcome == "ok" and status >= 500:
                outcome, code = "error", None
        else:
            operation = None
            if status < 400:
                outcome, code = "ok", None
            elif status < 500:
                outcome, code = "refused", STATUS_CODES.get(status, str(status))
            else:
                outcome, code = "error", None
        supplier, role = _role(context)
        metrics.observe_request(operation, role, outcome, code, seconds)
        request_logging.request_line(
            request_id=self.request_id,
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=seconds * 1000,
            outcome=outcome,
            code=code,
            supplier=supplier,
            role=role,
            operation=operation,
        )
        span = self.span
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("ketenpoort.outcome", outcome)
            if code:
                span.set_attribute("ketenpoort.code", code)
            span.end()
            RequestObserver._detach(span)
        REQUEST_ID.reset(self.token)


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
            return
        if kind != "http" or scope["path"].startswith(QUIET):
            await self.app(scope, receive, send)
            return
        observation = Observation(scope, send)
        try:
            await self.app(scope, receive, observation.send)
        finally:
            observation.finish(scope)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        global open_websockets
        request_id = request_id_of(scope)
        token = REQUEST_ID.set(request_id)
        open_websockets += 1
        no_websockets.clear()
        metrics.WEBSOCKETS.inc()
        span = self._start_span(scope, request_id) if tracing.tracer is not None else None
        try:
            await self.app(scope, receive, send)
        finally:
            open_websockets -= 1
            if not open_websockets:
                no_websockets.set()
            metrics.WEBSOCKETS.dec()
            if span is not None:
                span.end()
                self._detach(span)
            REQUEST_ID.reset(token)

    @staticmethod
    def _start_span(scope: Scope, request_id: str) -> Any:
        from opentelemetry import context as otel_context
        from opentelemetry import propagate, trace

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        parent = propagate.extract(carrier)
        method = scope.get("method", "WEBSOCKET")
        span = tracing.tracer.start_span(
            f"{method} {scope['path']}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "ketenpoort.request_id": request_id,
            },
        )
        span._ketenpoort_token = otel_context.attach(trace.set_span_in_context(span, parent))
        return span

    @staticmethod
    def _detach(span: Any) -> None:
        from opentelemetry import context as otel_context

        otel_context.detach(span._ketenpoort_token)


class ObserveOperation(SchemaExtension):
    """Notes the operation's name and outcome on the request's context (for the
    request line and the metrics) and, with tracing on, wraps it in a span. Never
    the query text or the variables."""

    def on_operation(self) -> Iterator[None]:
        span = None
        if tracing.tracer is not None:
            span = tracing.tracer.start_as_current_span("graphql operation")
            current = span.__enter__()
        try:
            yield
        finally:
            execution = self.execution_context
            name = operation_label(execution.operation_name)
            outcome, code = note_outcome(execution.context, name, execution.result)
            if span is not None:
                try:
                    kind = execution.operation_type.value
                except Exception:  # an unparsable document has no type
                    kind = "unknown"
                current.update_name(f"graphql {kind} {name or 'anonymous'}")
                current.set_attribute("graphql.operation.type", kind)
                if name:
                    current.set_attribute("graphql.operation.name", name)
                current.set_attribute("ketenpoort.outcome", outcome)
                if code:
                    current.set_attribute("ketenpoort.code", code)
                span.__exit__(None, None, None)


def operation_label(name: str | None) -> str | None:
    """The operation's name as logged and counted (a client's name: any BSN redacted)."""
    if name and contains_pgn(name):
        return redact_pgns(name)
    return name


def note_outcome(context: Any, name: str | None, result: Any) -> tuple[str, str | None]:
    """Note (name, outcome, code) on the request's context from the (masked) result:
    what `ObserveOperation` and the HTTP pipeline (gateway/pipeline.py) both note."""
    outcome, code = "ok", None
    for error in (getattr(result, "errors", None) or ()):
        found = (error.extensions or {}).get("code")
        if found:
            outcome, code = "refused", str(found)
        elif error.message.startswith(MASKED):
            outcome, code = "error", None
            break
        else:  # a parse or validation error: about the query
            outcome, code = "refused", "GRAPHQL_INVALID"
    if context is not None:
        try:
            context.observed = (name, outcome, code)
        except AttributeError:
            pass
    return outcome, code
