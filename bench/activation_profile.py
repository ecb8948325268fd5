"""Two looks inside the activation use case (issue 15), in this process, without HTTP:

* `ab`: the use-case run of bench/activation.py with the batches on the SQLAlchemy
  engine's connections (`gateway.resources.EnginePool`, what the gateway does) and on a
  separate asyncpg pool (`db.pg.create_pool`), alternating, three rounds of 8 s;
* `profile`: cProfile with the CPU clock over one 6 s use-case run (the profiler makes
  a click several times dearer: read the shares, not the times); the statistics go to
  /tmp/ketenpoort-activation-usecase.prof.

    .venv/bin/python -m bench.activation_profile ab|profile
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time

import bench.activation as activation
import gateway.resources as resources
from bench.support import raw_url, throwaway_database
from db.pg import create_pool

PROFILE = "/tmp/ketenpoort-activation-usecase.prof"


async def ab() -> None:
    async with throwaway_database() as url:
        data = await activation.prepare(url, 60_000, 32)
        left = activation.Pupils(data.eck_ids)
        hot = [[data.hot_product]] * 32
        engine_pool = resources.EnginePool
        try:
            for round_ in range(3):
                for kind in ("engine", "asyncpg"):
                    pool = None
                    if kind == "asyncpg":
                        pool = await create_pool(raw_url(url), max_size=3)
                        resources.EnginePool = lambda _engine, pool=pool: pool  # type: ignore[assignment,misc]
                    else:
                        resources.EnginePool = engine_pool  # type: ignore[misc]
                    run = await activation.use_case(kind, url, data, 32, 8, hot, left)
                    if pool is not None:
                        await pool.close()
                    print(
                        f"{kind:8s} round {round_ + 1}: {run.rate:6.0f}/s  Python "
                        f"{run.per('gateway'):.3f} ms  PostgreSQL {run.per('postgres'):.3f} ms  "
                        f"clicks/txn {len(run.latencies) / max(1, run.transactions):.1f}  "
                        f"load {run.load:.1f}",
                        flush=True,
                    )
        finally:
            resources.EnginePool = engine_pool  # type: ignore[misc]


async def profile() -> None:
    async with throwaway_database() as url:
        data = await activation.prepare(url, 30_000, 32)
        left = activation.Pupils(data.eck_ids)
        hot = [[data.hot_product]] * 32
        await activation.use_case("warm", url, data, 32, 2, hot, left)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        run = await activation.use_case("profile", url, data, 32, 6, hot, left)
        profiler.disable()
        print(
            f"clicks {len(run.latencies)}, transactions {run.transactions}, "
            f"{run.per('gateway'):.3f} ms of CPU per click with the profiler"
        )
        profiler.dump_stats(PROFILE)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run({"ab": ab, "profile": profile}[sys.argv[1] if len(sys.argv) > 1 else "ab"]())
