"""Graceful shutdown on SIGTERM, in front of uvicorn's own.

uvicorn, on SIGTERM, closes its listening sockets, fails every open websocket
with 1012 (without a reason) and then waits up to `timeout_graceful_shutdown`
for requests in flight before the lifespan's shutdown (broker stopped, audit
buffer flushed). A subscriber then knows the gateway restarts, but not where to
resume. So the gateway takes SIGTERM first:

1. `/readyz` answers 503 at once (a proxy stops sending new work here);
2. the live broker ends every subscription as `RESTART`: each websocket is closed
   with 1012 and the cursor to resume after in the reason (live/streams.py);
3. it waits (at most `WEBSOCKET_GRACE` seconds) until those websockets are closed,
   then hands the signal to uvicorn, which stops accepting, lets requests in
   flight finish within `Settings.shutdown_grace_seconds`
   (`ketenpoort serve --timeout-graceful-shutdown`) and runs the lifespan's
   shutdown. A second SIGTERM or SIGINT goes to uvicorn at once.

Only installed when uvicorn's own handler is the current one (a real server, not
a test client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from gateway import observe

log = logging.getLogger("ketenpoort.shutdown")

WEBSOCKET_GRACE = 5.0


class GracefulShutdown:
    def __init__(self, probes: Any, broker: Any) -> None:
        self.probes = probes
        self.broker = broker
        self.previous: Any = None
        self.started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def install(self) -> bool:
        previous = signal.getsignal(signal.SIGTERM)
        owner = getattr(previous, "__self__", None)
        if owner is None or type(owner).__name__ != "Server" or "uvicorn" not in type(
            owner
        ).__module__:
            return False
        self.previous = previous
        self._loop = asyncio.get_running_loop()
        signal.signal(signal.SIGTERM, self._on_signal)
        return True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.started or self._loop is None:
            self.previous(signum, frame)
            return
        self.started = True
        self._loop.call_soon_threadsafe(self._begin, signum, frame)

    def _begin(self, signum: int, frame: Any) -> None:
        self._task = asyncio.ensure_future(self._drain(signum, frame))

    async def _drain(self, signum: int, frame: Any) -> None:
        try:
            self.probes.draining = True
            broker = self.broker()
            ended = broker.drain() if broker is not None else 0
            log.info("SIGTERM: draining; %d live subscriptions closed with 1012", ended)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(observe.no_websockets.wait(), WEBSOCKET_GRACE)
        finally:
            self.previous(signum, frame)
