"""One request takes one rate-limit answer: the compiled front asks for the caller
first and the resolvers ask again when it falls back; the second ask must not go to
the limiter again (a second token, or a second round trip to Redis)."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from domain.roles import Role
from resolvers.auth import principal
from resolvers.context import Context, TokenClaims
from schema.errors import RateLimited
from settings import Environment, Settings


class CountingLimiter:
    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.calls = 0

    async def acquire(self, client: str) -> float:
        self.calls += 1
        return self.wait


def _context(limiter: CountingLimiter) -> Context:
    def no_sessions() -> None:
        raise AssertionError("a refused caller needs no database")

    context = Context(Settings(environment=Environment.TEST), no_sessions, None, Response())
    context.caller = TokenClaims("demo-shop", frozenset({Role.SELLER}), "token-1")
    context.limiter = limiter
    return context


async def test_a_refused_request_asks_the_limiter_once_and_is_refused_each_time() -> None:
    limiter = CountingLimiter(wait=2.0)
    context = _context(limiter)
    for _ in range(3):
        with pytest.raises(RateLimited):
            await principal(context)
        assert context.response.status_code == 429
        context.response.status_code = 200  # the compiled front restores it on a fallback
    assert limiter.calls == 1
