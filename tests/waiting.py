"""Waiting in tests on the thing itself: a condition polled until it holds, within a
generous bound that only guards against a hang on a busy machine (never a timing
assertion). A failure names what was awaited and, if given, what the test saw."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

#: The bound: far beyond what any wait takes on a loaded CI machine.
TIMEOUT = 90.0
#: How often the condition is asked.
POLL = 0.02


def until(
    condition: Callable[[], Any], what: str, *, timeout: float = TIMEOUT,
    seen: Callable[[], Any] | None = None,
) -> Any:
    """Poll `condition` until it is true; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}" + (f": {seen()}" if seen else ""))
        time.sleep(POLL)


async def until_async(
    condition: Callable[[], Any], what: str, *, bound: float = TIMEOUT
) -> Any:
    """`until` inside an event loop; `condition` may be a coroutine function."""
    deadline = time.monotonic() + bound
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(POLL)
