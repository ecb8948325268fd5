"""State shared by every gateway process and machine.

* The rate limit: with `Settings.redis_url`, one token bucket per client in Redis
  (`RedisRateLimiter`), so two workers or two machines together allow what one
  would; without it, a bucket per process (`gateway.limits.RateLimiter`). The
  bucket is updated by one Lua script (read, refill, take, write: atomic on the
  server) with Redis' own clock, so machines' clocks need not agree. When Redis is
  unreachable the process falls back to its own bucket and says so in the log:
  the gateway keeps answering, each process limiting on its own.
* The supplier registry cache: every process caches a supplier's roles for
  `supplier_cache_seconds`. On PostgreSQL a trigger (migrations 0010, 0011) sends
  NOTIFY on `SUPPLIER_CHANNEL` at the commit of any change to `supplier`,
  `supplier_role` or `supplier_school` (the schools a school account speaks for);
  `SupplierInvalidation` listens and empties the cache at once, so a role or
  school change takes effect in every process. It empties it also whenever it
  (re)connects, since notifications may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from gateway.limits import RateLimiter

log = logging.getLogger("ketenpoort.shared")

SUPPLIER_CHANNEL = "ketenpoort_supplier"

# KEYS[1]: the client's bucket; ARGV: rate per second, burst. Returns the seconds
# to wait as a string (0 when the request may go).
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'n', 't')
local tokens = tonumber(stored[1])
local last = tonumber(stored[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'n', tostring(tokens), 't', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """The token bucket of `RateLimiter`, kept in Redis for all processes."""

    def __init__(self, url: str, prefix: str, rate: float, burst: int) -> None:
        import redis.asyncio as redis

        self.rate = rate
        self.burst = burst
        self.prefix = f"{prefix}:rate:"
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.script = self.client.register_script(TOKEN_BUCKET)
        self.fallback = RateLimiter(rate, burst)
        self._warned_at = 0.0
        self.errors = 0

    async def acquire(self, client: str) -> float:
        """0 when allowed; otherwise the seconds to wait before the next request."""
        if self.rate <= 0:
            return 0.0
        try:
            answer = await self.script(keys=[self.prefix + client], args=[self.rate, self.burst])
        except Exception as exc:  # Redis away: limit per process rather than not at all
            self.errors += 1
            now = time.monotonic()
            if now - self._warned_at > 10:
                self._warned_at = now
                log.warning("rate limit: Redis unreachable (%s); limiting per process", exc)
            return self.fallback.allow(client)
        return float(answer)

    async def close(self) -> None:
        await self.client.aclose()


def rate_limiter(settings: Any) -> Any:
    """The configured rate limiter: shared through Redis or per process."""
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url,
            settings.redis_key_prefix,
            settings.rate_limit_per_second,
            settings.rate_limit_burst,
        )
    return RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)


class SupplierInvalidation:
    """LISTEN on `SUPPLIER_CHANNEL` (PostgreSQL) and empty `cache` on every
    notification; reconnects with back-off when the connection is lost."""

    def __init__(self, connect_arguments: dict[str, Any], cache: Any) -> None:
        self.connect_arguments = connect_arguments
        self.cache = cache
        self.listening = asyncio.Event()
        self.invalidations = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="supplier-invalidation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_notify(self, *_: Any) -> None:
        self.invalidations += 1
        self.cache.clear()

    async def _run(self) -> None:
        import asyncpg

        backoff = 0.5
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(**self.connect_arguments, timeout=10)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(SUPPLIER_CHANNEL, self._on_notify)
                self.cache.clear()  # whatever changed while we were not listening
                self.listening.set()
                backoff = 0.5
                while not lost.is_set():
                    try:
                        async with asyncio.timeout(30):
                            await lost.wait()
                    except TimeoutError:
                        await connection.fetchval("SELECT 1", timeout=10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("supplier cache: LISTEN connection lost: %s", exc)
            finally:
                self.listening.clear()
                if connection is not None and not connection.is_closed():
                    try:
                        await asyncio.wait_for(connection.close(), 2)
                    except (Exception, asyncio.CancelledError):
                        connection.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
