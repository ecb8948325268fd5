"""Make the PostgreSQL server busy the way a shared server is (issue 13.1): write
transactions that stay open in another database, a bulk load, and one core kept
busy, so that the live tests can show that unrelated work does not hold the event
stream back.

    .venv/bin/python -m bench.busy_server                # until Ctrl-C
    .venv/bin/python -m bench.busy_server --seconds 600

In a throwaway database of its own (dropped at the end) it keeps, at every moment:

* `--idle` sessions "idle in transaction" that have written a row and hold their
  transaction id for `--hold` seconds, then commit and start again (staggered, so
  one is always open and the oldest transaction on the server is always one of
  these);
* one bulk load: a transaction that inserts `--rows` rows per second for `--hold`
  seconds before it commits;
* with `--cpu` (the default), a process that keeps one core at 100 %.

Every few seconds it prints how many of its transactions are open and the age of
the oldest, read from pg_stat_activity, so a run shows the load was there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import signal
import time

import asyncpg

from bench.support import raw_url, throwaway_database


def _spin() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        pass


async def _idle_writer(url: str, hold: float, offset: float, stop: asyncio.Event) -> None:
    await _pause(offset, stop)
    connection = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            async with connection.transaction():
                await connection.execute("INSERT INTO busy (note) VALUES ('idle in transaction')")
                await _pause(hold, stop)
    finally:
        await connection.close()


async def _bulk_load(url: str, hold: float, rows: int, stop: asyncio.Event) -> None:
    connection = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            async with connection.transaction():
                ends = time.monotonic() + hold
                while time.monotonic() < ends and not stop.is_set():
                    await connection.execute(
                        "INSERT INTO busy (note) SELECT 'bulk ' || g FROM generate_series(1, $1) g",
                        rows,
                    )
                    await _pause(1.0, stop)
    finally:
        await connection.close()


async def _pause(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _report(url: str, stop: asyncio.Event) -> None:
    connection = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            row = await connection.fetchrow(
                """SELECT count(*) AS open, max(clock_timestamp() - xact_start) AS oldest
                   FROM pg_stat_activity
                   WHERE datname = current_database() AND backend_xid IS NOT NULL"""
            )
            print(
                f"busy_server: {row['open']} write transactions open, oldest {row['oldest']}",
                flush=True,
            )
            await _pause(5.0, stop)
    finally:
        await connection.close()


async def main(args: argparse.Namespace) -> None:
    spinner = None
    if args.cpu:
        spinner = multiprocessing.Process(target=_spin, daemon=True)
        spinner.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with throwaway_database("ketenpoort_busy") as url:
            plain = raw_url(url)
            setup = await asyncpg.connect(plain)
            await setup.execute("CREATE TABLE busy (id bigserial PRIMARY KEY, note text)")
            await setup.close()
            stagger = args.hold / max(args.idle, 1)
            work = [_idle_writer(plain, args.hold, n * stagger, stop) for n in range(args.idle)]
            work.append(_bulk_load(plain, args.hold, args.rows, stop))
            work.append(_report(plain, stop))
            if args.seconds:
                loop.call_later(args.seconds, stop.set)
            print(f"busy_server: running in {url.rsplit('/', 1)[1]} (Ctrl-C stops)", flush=True)
            await asyncio.gather(*work)
    finally:
        if spinner is not None:
            spinner.terminate()
            spinner.join()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0, help="stop after this (0: never)")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds a transaction stays open")
    parser.add_argument("--idle", type=int, default=2, help="idle-in-transaction writers")
    parser.add_argument("--rows", type=int, default=5000, help="bulk-load rows per second")
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
