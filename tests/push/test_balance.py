"""Lease balancing: processes that deliver share the enabled endpoints, each up to
its share (all divided by the processes, rounded up), never one endpoint twice; a
newcomer gets its share once the others have let go of theirs, and when a process
stops the others take its endpoints back. On SQLite and PostgreSQL, the
deliverers driven round by round (what the lease loop does)."""

from __future__ import annotations

from sqlalchemy import func, select

from db import push as store
from db.engine import create_sessionmaker
from tests.conftest import LiveGateway
from tests.push.conftest import Clock, register
from tests.push.receiver import Receiver


async def _enabled(live: LiveGateway) -> int:
    async with create_sessionmaker(live.engine)() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(store.PushEndpoint)
                .where(store.PushEndpoint.enabled.is_(True))
            )
            or 0
        )


async def test_processes_share_the_endpoints_and_take_them_back(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock
) -> None:
    for _ in range(3):
        await register(live, receiver.url)
    total = await _enabled(live)
    first = await service_for(clock)
    second = await service_for(clock)

    assert len(await first.refresh_leases()) == total  # alone: everything
    assert await second.refresh_leases() == []  # all held: nothing yet, but it counts
    share = -(-total // 2)
    kept = await first.refresh_leases()
    assert len(kept) == share  # over its share now: the rest let go at once
    taken = await second.refresh_leases()
    assert len(taken) == total - share
    assert set(kept).isdisjoint(taken)
    assert set(first.workers) == set(kept)
    assert set(second.workers) == set(taken)
    # Stable: another round changes nothing.
    assert await first.refresh_leases() == kept
    assert await second.refresh_leases() == taken

    third = await service_for(clock)
    await third.refresh_leases()
    share = -(-total // 3)
    for service in (first, second, third, first, second, third):
        await service.refresh_leases()
    rounds = [set(s.workers) for s in (first, second, third)]
    assert sum(len(r) for r in rounds) == total
    assert all(len(r) <= share for r in rounds)
    assert rounds[0].isdisjoint(rounds[1] | rounds[2])
    assert rounds[1].isdisjoint(rounds[2])

    await second.stop()  # lets go of its endpoints and of its place
    await third.stop()
    assert len(await first.refresh_leases()) == total
