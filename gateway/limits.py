"""Limits against hostile or careless queries: depth, aliases, tokens, a cost
limit on list fields, introspection off where configured, and a per-client rate
limit. `gateway_schema(settings)` is the schema with these limits applied.

Depth, aliases, cost and width are measured in one pass linear in the document,
whatever its fragments (`gateway/shape.py`, which also says how cost is counted).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import strawberry
from graphql import ValidationRule
from strawberry.extensions import MaxTokensLimiter
from strawberry.extensions.disable_introspection import DisableIntrospection

from gateway.observe import ObserveOperation
from gateway.shape import Limits, shape_rule
from schema import build_schema
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


def validation_rules(settings: Settings) -> list[type[ValidationRule]]:
    """The configured limits, as validation rules."""
    rules = [
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


def gateway_schema(settings: Settings) -> strawberry.Schema:
    """The schema as the gateway serves it: every limit of `settings` applied."""
    return build_schema(
        validation_rules=validation_rules(settings),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            ObserveOperation,  # operation name and outcome for logs, metrics, spans
        ],
    )
