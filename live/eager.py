"""Run a coroutine at once, in the caller's stack, up to its first real wait.

The live broker delivers one event to thousands of subscriptions in one pass;
most sends complete without waiting (the peer's socket has room), so starting a
task for each would cost a task, a future and a wake-up per subscriber for
nothing. `run_eagerly` runs the coroutine right away: its result if it finished,
or a task that carries it on from where it waits. This is what Python 3.12's
eager tasks (`asyncio.eager_task_factory`) do; the gateway runs on 3.11.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Pending:
    """A coroutine that had to wait: `task` carries it on."""

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task


def run_eagerly(coro: Coroutine[Any, Any, T]) -> T | Pending:
    """The coroutine's result if it finishes without waiting (its exception is
    raised here), else `Pending` with the task that finishes it."""
    try:
        waiting = coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    return Pending(asyncio.ensure_future(_carry_on(coro, waiting)))


async def _carry_on(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Drive `coro` as its task would, from the future it is waiting for."""
    while True:
        try:
            if waiting is None:  # a bare yield (asyncio.sleep(0)): next loop pass
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False  # taken, as Task.__step does
                await asyncio.wait((waiting,))
        except asyncio.CancelledError as cancelled:  # this task: cancel the coroutine
            try:
                waiting = coro.throw(cancelled)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            continue
        try:
            waiting = coro.send(None)  # the future is done: its result goes in
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
