"""The verified-token cache (gateway/token_cache.py): a token is verified once and
then answered from memory until its `exp`; a refused token, an expired one and an
over-long header are verified every time; the cache stays bounded."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from gateway import token_cache
from gateway.token_cache import CachedVerifier
from gateway.tokens import TokenError, TokenVerifier, mint_token
from settings import Environment, Settings

DEV = Settings(environment=Environment.TEST, jwt_leeway_seconds=0)


class Counting:
    """The real verifier, counting its verifications."""

    def __init__(self) -> None:
        self.real = TokenVerifier(DEV)
        self.calls = 0
        self.settings = DEV

    def verify(self, authorization: str | None) -> Any:
        self.calls += 1
        return self.real.verify(authorization)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def bearer(lifetime: timedelta = timedelta(hours=1), now: datetime | None = None) -> str:
    return "Bearer " + mint_token(DEV, "demo-publisher", ["licensor"], lifetime=lifetime, now=now)


def test_a_token_is_verified_once_and_answered_from_memory_until_its_exp() -> None:
    inner, clock = Counting(), Clock()
    cached = CachedVerifier(inner, clock=clock)
    header = bearer(timedelta(minutes=10))
    first = cached.verify(header)
    assert [cached.verify(header) for _ in range(100)] == [first] * 100
    assert (inner.calls, cached.hits, cached.misses) == (1, 100, 1)
    assert first.supplier_code == "demo-publisher"
    assert cached.settings is DEV  # the rest of the verifier shows through

    exp = jwt.decode(header.split()[1], options={"verify_signature": False})["exp"]
    clock.now = exp - 1
    cached.verify(header)
    assert inner.calls == 1
    clock.now = exp  # from exp on the verifier decides again
    cached.verify(header)
    assert inner.calls == 2


def test_an_expired_token_is_refused_every_time_and_never_kept() -> None:
    inner = Counting()
    cached = CachedVerifier(inner)
    issued = datetime.now(UTC) - timedelta(hours=2)
    header = bearer(timedelta(hours=1), now=issued)
    for _ in range(3):
        with pytest.raises(TokenError, match="expired"):
            cached.verify(header)
    assert (inner.calls, cached.hits) == (3, 0)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Basic abc", "Bearer not-a-jwt", "Bearer " + "x" * 10_000],
    ids=["missing", "empty", "no-token", "basic", "garbage", "huge"],
)
def test_refused_headers_are_verified_every_time(header: str | None) -> None:
    inner = Counting()
    cached = CachedVerifier(inner)
    for _ in range(3):
        with pytest.raises(TokenError):
            cached.verify(header)
    assert (inner.calls, cached.hits) == (3, 0)


def test_a_token_with_another_signature_is_not_answered_from_the_cache() -> None:
    inner = Counting()
    cached = CachedVerifier(inner)
    header = bearer()
    cached.verify(header)
    forged = header[:-4] + ("AAAA" if not header.endswith("AAAA") else "BBBB")
    with pytest.raises(TokenError):
        cached.verify(forged)
    assert inner.calls == 2


def test_over_long_headers_are_not_kept_and_the_cache_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = Counting()
    cached = CachedVerifier(inner, max_entries=3)
    headers = [bearer() for _ in range(10)]
    for header in headers:
        cached.verify(header)
    assert len(cached._cache) == 3
    assert inner.calls == 10
    cached.verify(headers[-1])  # the most recent ones stay
    assert inner.calls == 10

    monkeypatch.setattr(token_cache, "MAX_TOKEN_CHARS", 10)
    other = CachedVerifier(inner)
    other.verify(headers[0])
    other.verify(headers[0])
    assert len(other._cache) == 0
    assert inner.calls == 12


def test_the_gateway_verifies_with_the_cache() -> None:
    from app import create_app

    app = create_app(DEV)
    assert isinstance(app.state.graphql.verifier, CachedVerifier)
