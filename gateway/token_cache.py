"""Verified tokens, remembered until they expire: a licence office sends the same
bearer token with thousands of clicks, and checking its signature and claims again
for each of them was a twentieth of a worker's CPU at 08:30 (bench/RESULTS.md).

`CachedVerifier` wraps the gateway's `TokenVerifier` (gateway/tokens.py, which
stays the one place that decides what a valid token is). A token that passes is
kept under its exact header value with the caller it gave, until its `exp`
(`cachetools.TLRUCache`: a bounded LRU whose entries each expire at their own
time); after `exp` the cache no longer answers and the verifier decides again
(with its leeway). A refused token is never kept: it is checked each time. Tokens
longer than `MAX_TOKEN_CHARS` are checked each time too, so the cache stays small
whatever callers send.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
from cachetools import TLRUCache

#: Verified tokens kept per process (least recently used go first).
MAX_ENTRIES = 10_000
#: A longer Authorization header is verified every time, never kept.
MAX_TOKEN_CHARS = 4096
#: The tokens answered from a plain dict in front of the LRU (the few callers sending
#: most requests; emptied when full).
HOT_ENTRIES = 64


class CachedVerifier:
    """`verify(authorization)` as the wrapped verifier answers it, from memory while
    the token has not expired."""

    def __init__(
        self,
        verifier: Any,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self._clock = clock
        self._hot: dict[str, tuple[Any, float]] = {}
        self._cache: TLRUCache[str, tuple[Any, float]] = TLRUCache(
            maxsize=max_entries, ttu=lambda _key, value, _now: value[1], timer=clock
        )
        #: Answers given from memory, and verifications done (tests, counters).
        self.hits = 0
        self.misses = 0

    def verify(self, authorization: str | None) -> Any:
        if authorization:
            found = self._hot.get(authorization)
            if found is not None and self._clock() < found[1]:
                self.hits += 1
                return found[0]
            found = self._cache.get(authorization)
            if found is not None:
                if len(self._hot) >= HOT_ENTRIES:
                    self._hot.clear()
                self._hot[authorization] = found
                self.hits += 1
                return found[0]
        self.misses += 1
        caller = self.verifier.verify(authorization)  # raises for a refused token
        assert authorization is not None
        if len(authorization) <= MAX_TOKEN_CHARS:
            expires = _expiry(authorization)
            if expires is not None:
                self._cache[authorization] = (caller, expires)
        return caller

    def clear(self) -> None:
        self._hot.clear()
        self._cache.clear()

    def __getattr__(self, name: str) -> Any:
        # Whatever else callers use of the verifier (its settings, keys).
        return getattr(self.verifier, name)


def _expiry(authorization: str) -> float | None:
    """The `exp` of a token the verifier has just accepted (its signature and claims
    were checked there; this only reads the number)."""
    token = authorization.partition(" ")[2].strip()
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)
