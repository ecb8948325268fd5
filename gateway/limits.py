"""Limits against hostile or careless queries: depth, aliases, tokens, a cost
limit on list fields, input values (gateway/inputs.py), introspection off where
configured and behind a token where on, an execution deadline, and a per-client
rate limit. `gateway_schema(settings)` is the schema with these limits applied, so
every transport that runs it (HTTP, websockets) applies them.

Depth, aliases, cost and width are measured in one pass linear in the document,
whatever its fragments (`gateway/shape.py`, which also says how cost is counted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import ASTValidationRule, FieldNode, OperationType, Visitor, visit
from graphql.language.visitor import BREAK
from strawberry.extensions import MaxTokensLimiter, SchemaExtension
from strawberry.extensions.disable_introspection import DisableIntrospection

from gateway.inputs import input_checks, validated
from gateway.observe import ObserveOperation
from gateway.shape import Limits, shape_rule
from resolvers.api import build_schema
from schema.errors import GatewayError, Unauthenticated
from settings import Settings


@dataclass
class RateLimiter:
    """A token bucket per client (supplier code), in this process: `rate` requests
    per second sustained, `burst` at once. Several gateway processes each keep
    their own buckets, so the effective limit is per process."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, client: str, now: float | None = None) -> float:
        """0 when allowed; otherwise the seconds to wait before the next request."""
        if self.rate <= 0:
            return 0.0
        moment = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(client, (float(self.burst), moment))
        tokens = min(float(self.burst), tokens + (moment - last) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, moment)
            return 0.0
        self._buckets[client] = (tokens, moment)
        return (1 - tokens) / self.rate

    async def acquire(self, client: str) -> float:
        """`allow` with the interface of the shared limiter (gateway/shared.py)."""
        return self.allow(client)


def validation_rules(settings: Settings) -> list[type[ASTValidationRule]]:
    """The configured limits, as validation rules."""
    rules: list[type[ASTValidationRule]] = [
        shape_rule(
            Limits(
                max_depth=settings.max_query_depth,
                max_aliases=settings.max_aliases,
                max_cost=settings.max_query_cost,
                default_page=settings.default_page_size,
                max_page=settings.max_page_size,
            )
        ),
    ]
    if not settings.introspection:
        rules += DisableIntrospection().validation_rules
    return rules


class RequestTimedOut(GatewayError):
    code = "REQUEST_TIMEOUT"


def timed_out(seconds: float) -> RequestTimedOut:
    """The answer to a query or mutation cut off after `seconds` of execution (the
    deadline below; the HTTP pipeline, gateway/pipeline.py, applies it itself)."""
    return RequestTimedOut(
        f"the request took longer than {seconds:g} s and was stopped; ask for less at once",
        limit=seconds,
    )


def request_deadline(seconds: float) -> type[SchemaExtension]:
    """Queries and mutations are cut off after `seconds` of execution (awaiting
    resolvers are cancelled; other requests of the process never waited for them)
    and answered REQUEST_TIMEOUT. Subscriptions run as long as they are wanted."""

    class RequestDeadline(SchemaExtension):
        # The timer starts with execution (the operation's type is known then) and
        # cancels the request's task; the cancellation is turned into the answer where
        # the whole operation ends, since it may arrive while another extension's
        # execution hook is still beginning (a compiled read), where no hook ends.
        _timer: asyncio.TimerHandle | None = None
        _expired = False

        async def on_operation(self) -> AsyncIterator[None]:
            try:
                yield
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self._expired or task is None:
                    raise
                task.uncancel()
                raise timed_out(seconds) from None
            finally:
                self._stop()

        def on_execute(self) -> Iterator[None]:
            context = self.execution_context
            task = asyncio.current_task()
            if seconds > 0 and task is not None and (
                context.operation_type is not OperationType.SUBSCRIPTION
            ):

                def expire() -> None:
                    self._expired = True
                    task.cancel()

                self._timer = asyncio.get_running_loop().call_later(seconds, expire)
            try:
                yield
            finally:
                self._stop()

        def _stop(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    return RequestDeadline


def asks_for_introspection(document: Any) -> bool:
    """Whether the document reads the schema (`__schema`, `__type`; `__typename` is
    an ordinary field): one pass over its nodes."""
    found = False

    class Find(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> Any:
            nonlocal found
            if node.name.value in ("__schema", "__type"):
                found = True
                return BREAK
            return None

    visit(document, Find())
    return found


class IntrospectionNeedsToken(SchemaExtension):
    """Introspection, where it is switched on, answers callers with a valid bearer
    token only (GraphiQL sends the one in its Headers tab): the schema is no map
    for anonymous visitors. UNAUTHENTICATED (HTTP 401) otherwise."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        request = context.context
        if (
            validated(context)
            and getattr(request, "caller", None) is None
            and asks_for_introspection(context.graphql_document)
        ):
            self._refuse(request)
        yield

    def _refuse(self, request: Any) -> None:
        context = self.execution_context
        response = getattr(request, "response", None)
        if response is not None and hasattr(response, "status_code"):
            response.status_code = 401
        reason = getattr(request, "auth_error", None) or "missing bearer token"
        context.pre_execution_errors = [
            Unauthenticated(f"introspection needs a valid bearer token: {reason}")
        ]


def gateway_schema(settings: Settings) -> strawberry.Schema:
    """The schema as the gateway serves it: every limit of `settings` applied."""
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        ObserveOperation,  # operation name and outcome for logs, metrics, spans
        input_checks(settings.max_input_string_length),
        request_deadline(settings.request_timeout_seconds),
    ]
    if settings.introspection and settings.introspection_needs_token:
        extensions.append(IntrospectionNeedsToken)
    rules = validation_rules(settings)
    schema = build_schema(validation_rules=rules, extensions=extensions)
    # What the HTTP handler's pipeline (gateway/pipeline.py) does per document without
    # the extensions: these settings' rules, for exactly these extensions.
    schema.gateway_spec = GatewaySpec(settings, tuple(rules), tuple(schema.extensions))  # type: ignore[attr-defined]
    return schema


@dataclass(frozen=True)
class GatewaySpec:
    settings: Settings
    rules: tuple[type[ASTValidationRule], ...]
    extensions: tuple[Any, ...]
