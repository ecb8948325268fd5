"""The supplier cache (gateway/caches.py): one registry read per supplier however many
requests ask at once, a refresh ahead of expiry by one request, and no stale row
kept or shared across a NOTIFY that emptied it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.caches import REFRESH_AHEAD, SupplierCache


class Registry:
    """A load that counts its reads and finishes when the test says so."""

    def __init__(self, value: Any = "row") -> None:
        self.value = value
        self.reads = 0
        self.release = asyncio.Event()
        self.fail: BaseException | None = None

    async def load(self) -> Any:
        self.reads += 1
        read = self.reads
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"{self.value}-{read}"


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_requests_arriving_together_share_one_read() -> None:
    cache, registry = SupplierCache(60), Registry()
    asking = [asyncio.create_task(cache.lookup("demo-shop", registry.load)) for _ in range(32)]
    await _settle()
    registry.release.set()
    assert set(await asyncio.gather(*asking)) == {"row-1"}
    assert registry.reads == 1
    assert await cache.lookup("demo-shop", registry.load) == "row-1"  # kept
    assert registry.reads == 1


async def _aged() -> tuple[SupplierCache, Registry]:
    """A cache whose entry for demo-shop ("row-1") is in the last fifth of its life."""
    cache, registry = SupplierCache(60), Registry()
    registry.release.set()
    await cache.lookup("demo-shop", registry.load)
    value = cache._entries["demo-shop"][1]
    cache._entries["demo-shop"] = (time.monotonic() + 60 * REFRESH_AHEAD / 2, value)
    return cache, registry


@pytest.mark.asyncio
async def test_an_entry_near_its_end_is_read_again_by_one_request_only() -> None:
    cache, registry = await _aged()
    registry.release.clear()
    refresher = asyncio.create_task(cache.lookup("demo-shop", registry.load))
    await _settle()
    others = await asyncio.gather(*(cache.lookup("demo-shop", registry.load) for _ in range(10)))
    assert others == ["row-1"] * 10  # answered from the entry meanwhile
    registry.release.set()
    assert await refresher == "row-2"
    assert registry.reads == 2
    assert cache.get("demo-shop") == "row-2"


@pytest.mark.asyncio
async def test_a_refresh_that_fails_answers_from_the_entry_still_valid() -> None:
    cache, registry = await _aged()
    value = cache._entries["demo-shop"][1]
    registry.fail = RuntimeError("connection lost")
    assert await cache.lookup("demo-shop", registry.load) == "row-1"
    assert registry.reads == 2
    cache._entries["demo-shop"] = (time.monotonic() - 1, value)  # expired: the caller fails
    with pytest.raises(RuntimeError):
        await cache.lookup("demo-shop", registry.load)


@pytest.mark.asyncio
async def test_when_the_shared_read_fails_each_waiter_reads_for_itself() -> None:
    cache, registry = SupplierCache(60), Registry()
    registry.fail = RuntimeError("connection lost")
    first = asyncio.create_task(cache.lookup("demo-shop", registry.load))
    await _settle()
    waiters = [asyncio.create_task(cache.lookup("demo-shop", registry.load)) for _ in range(3)]
    await _settle()
    registry.release.set()
    with pytest.raises(RuntimeError):
        await first
    registry.fail = None
    assert sorted(await asyncio.gather(*waiters)) == ["row-2", "row-3", "row-4"]


@pytest.mark.asyncio
async def test_a_cancelled_reader_does_not_strand_its_waiters() -> None:
    cache, registry = SupplierCache(60), Registry()
    first = asyncio.create_task(cache.lookup("demo-shop", registry.load))
    await _settle()
    waiter = asyncio.create_task(cache.lookup("demo-shop", registry.load))
    await _settle()
    first.cancel()
    await _settle()
    registry.release.set()
    assert await waiter == "row-2"
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.asyncio
async def test_a_read_begun_before_a_change_is_neither_kept_nor_shared_after_it() -> None:
    cache, registry = SupplierCache(60), Registry()
    before = asyncio.create_task(cache.lookup("demo-shop", registry.load))
    await _settle()
    cache.clear()  # the registry's NOTIFY arrives while the read is in flight
    after = asyncio.create_task(cache.lookup("demo-shop", registry.load))
    await _settle()
    registry.release.set()
    assert await before == "row-1"  # its own request's answer
    assert await after == "row-2"  # read anew, not the read from before the change
    assert cache.get("demo-shop") == "row-2"


@pytest.mark.asyncio
async def test_without_a_lifetime_every_request_reads() -> None:
    cache, registry = SupplierCache(0), Registry()
    registry.release.set()
    assert [await cache.lookup("demo-shop", registry.load) for _ in range(3)] == [
        "row-1",
        "row-2",
        "row-3",
    ]
