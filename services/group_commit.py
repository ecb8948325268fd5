"""Group commit for activations on PostgreSQL: the clicks one process receives
within a short window are decided and registered together (`activate_batch`), so
that 08:30 costs one transaction, one WAL flush and one counter update per
entitlement per batch instead of per click, while each click keeps its own answer.

A batch starts when `window` seconds have passed since its first click arrived, or
as soon as `max_clicks` are waiting, whichever comes first; a lone click therefore
waits at most `window`. `workers` batches may be in flight at once (each on its own
connection of the plain pool); clicks arriving meanwhile form the next batch.

A batch whose transaction fails on a deadlock, a serialisation failure or a unique
violation (a race another process won) is run again from the facts up, at most
`ATTEMPTS` times; after any other error each of its clicks runs alone, so the error
is only the click's that caused it. Nothing of a failed batch was written: its
transaction is all or nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg

from db.activation_pg import AsyncpgExecutor, PgActivationStore
from services.activation import Result, activate_batch
from services.unit_of_work import Answered, Click, Retry

log = logging.getLogger("ketenpoort.activation")

ATTEMPTS = 3
_RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.UniqueViolationError,
)


@dataclass
class _Waiting:
    click: Click
    future: asyncio.Future[Result]
    arrived: float
    retries: int = field(default=0)


class GroupCommit:
    """One per process (the app's lifespan starts and stops it)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        today: Callable[[], date],
        *,
        window: float = 0.002,
        max_clicks: int = 64,
        workers: int = 1,
    ) -> None:
        self.pool = pool
        self.today = today
        self.window = window
        self.max_clicks = max(1, max_clicks)
        self.workers = max(1, workers)
        self._queue: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: Batches run and clicks in them, for tests and the benchmark.
        self.batches = 0
        self.clicks = 0

    @classmethod
    def configured(
        cls, pool: asyncpg.Pool, today: Callable[[], date], settings: Any
    ) -> GroupCommit:
        """With the window, size and workers of the gateway's settings."""
        return cls(
            pool,
            today,
            window=settings.activation_batch_window_ms / 1000,
            max_clicks=settings.activation_batch_max,
            workers=settings.activation_batch_workers,
        )

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        _fail(self._queue, RuntimeError("the gateway is shutting down"))
        self._queue.clear()

    async def activate(self, click: Click) -> Answered:
        """Queue the click for the next batch and wait for its answer; raises
        `ReferenceConflict` for a reused referenceId with another message."""
        if not self._tasks:
            raise RuntimeError("the activation group commit is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append(_Waiting(click, future, loop.time()))
        self._wake.set()
        result = await future
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, Answered)
        return result

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = self._queue[0].arrived + self.window
            while len(self._queue) < self.max_clicks:
                delay = deadline - loop.time()
                if delay <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    break
            batch = self._queue[: self.max_clicks]
            del self._queue[: self.max_clicks]
            if batch:
                try:
                    await self._run_or_split(batch)
                except asyncio.CancelledError:
                    _fail(batch, RuntimeError("the gateway is shutting down"))
                    raise

    async def _run_or_split(self, batch: list[_Waiting]) -> None:
        """Run the batch; when it fails for a reason other than a race, run each of its
        clicks alone, so that a click that cannot be stored fails only itself."""
        try:
            await self._run(batch)
            return
        except Exception as error:  # never lose the worker
            if len(batch) == 1:
                log.exception("activation click failed")
                _fail(batch, error)
                return
            log.warning("activation batch of %d clicks failed (%s); one by one", len(batch), error)
        for waiting in batch:
            if not waiting.future.done():
                await self._run_or_split([waiting])

    async def _run(self, batch: list[_Waiting]) -> None:
        clicks = [waiting.click for waiting in batch]
        for attempt in range(ATTEMPTS):
            try:
                async with self.pool.acquire() as connection:
                    store = PgActivationStore(AsyncpgExecutor(connection))
                    results = await activate_batch(store, clicks, self.today())
                break
            except _RETRYABLE:
                if attempt == ATTEMPTS - 1:
                    raise
                log.info("activation batch of %d clicks runs again after a race", len(batch))
        self.batches += 1
        self.clicks += len(batch)
        again: list[_Waiting] = []
        for waiting, result in zip(batch, results, strict=True):
            if isinstance(result, Retry):
                waiting.retries += 1
                if waiting.retries > ATTEMPTS * 4:
                    result = RuntimeError("the click could not be decided")  # type: ignore[assignment]
                else:
                    again.append(waiting)
                    continue
            if not waiting.future.done():
                waiting.future.set_result(result)
        if again:
            self._queue[:0] = again  # first in the next batch
            self._wake.set()


def _fail(batch: list[_Waiting], error: BaseException) -> None:
    for waiting in batch:
        if not waiting.future.done():
            waiting.future.set_exception(error)
