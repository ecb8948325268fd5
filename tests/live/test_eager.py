"""live.eager: a coroutine run at once, carried on by a task when it waits."""

from __future__ import annotations

import asyncio

import pytest

from live.eager import Pending, run_eagerly


async def test_a_coroutine_that_never_waits_gives_its_result_at_once() -> None:
    steps: list[str] = []

    async def inner() -> int:
        steps.append("inner")
        return 41

    async def outer() -> int:
        return await inner() + 1

    assert run_eagerly(outer()) == 42
    assert steps == ["inner"]


async def test_an_exception_before_any_wait_is_raised_to_the_caller() -> None:
    async def failing() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        run_eagerly(failing())


async def test_a_coroutine_that_waits_is_carried_on_with_the_futures_results() -> None:
    first: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    gate = asyncio.Event()
    steps: list[str] = []

    async def work() -> int:
        steps.append("started")
        value = await first
        steps.append(f"got {value}")
        await asyncio.sleep(0)  # a bare yield
        await gate.wait()
        return value * 2

    outcome = run_eagerly(work())
    assert isinstance(outcome, Pending)
    assert steps == ["started"]  # ran up to its first wait, in the caller's stack
    first.set_result(21)
    for _ in range(1000):  # the task's turns, until it reaches its next wait
        if len(steps) == 2:
            break
        await asyncio.sleep(0)
    assert steps == ["started", "got 21"]
    assert not outcome.task.done()
    gate.set()
    assert await outcome.task == 42


async def test_a_waited_future_that_fails_raises_inside_the_coroutine() -> None:
    failing: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def work() -> str:
        try:
            await failing
        except KeyError:
            return "handled"
        return "not reached"

    outcome = run_eagerly(work())
    assert isinstance(outcome, Pending)
    failing.set_exception(KeyError("x"))
    assert await outcome.task == "handled"


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[bool] = []

    async def work() -> None:
        try:
            await never
        finally:
            cleaned.append(True)

    outcome = run_eagerly(work())
    assert isinstance(outcome, Pending)
    await asyncio.sleep(0)
    outcome.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outcome.task
    assert cleaned == [True]
