"""Fan-out: N websocket subscribers on one gateway process receive one event each.

One uvicorn process on a throwaway PostgreSQL database; the subscribers are
websocket clients (graphql-transport-ws) in separate processes, so the server's
memory (VmRSS from /proc) is its own. Every subscriber follows the same delivery
with `initialState: true`; once all of them have the state (so all are
registered), the shop lowers the quantity of the entitlement (one mutation, one
event) and every client notes when the event arrives. Latency is measured from
the mutation's response (the commit happened before it: a lower bound of the true
latency) and from the moment the mutation was sent (an upper bound). Several
rounds, one event each.

    .venv/bin/python -m bench.fanout --subscribers 1000 5000 [--rounds 3] [--clients 2]
    .venv/bin/python -m bench.fanout --subscribers 5000 --profile   # where time goes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.support import (
    ROOT,
    free_port,
    gateway,
    percentile,
    throwaway_database,
    token,
    write_section,
)

SUBSCRIPTION = """subscription ($d: ID!) {
  deliveryProgress(deliveryId: $d, initialState: true) { __typename
    ... on DeliveryProgressEvent { cursor kind } ... on EntitlementSnapshot { cursor } } }"""
SUBMIT = """mutation ($input: DeliveryInput!) { deliverySubmit(input: $input) {
  __typename ... on DeliverySubmitted { delivery { id entitlements { id } } } } }"""
LOWER = """mutation ($input: EntitlementQuantityInput!) {
  entitlementLowerQuantity(input: $input) { __typename } }"""
PROFILE = ROOT / "bench" / "fanout-profile.txt"


def raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            found[key] = int(value.split()[0])
    return found


# --- the client processes ----------------------------------------------------------------------


async def client(url: str, bearer: str, delivery: str, count: int, rounds: int) -> None:
    """One client process: `count` subscribers. Prints READY once all have the state,
    then one line per round with every subscriber's receive time (monotonic clock,
    shared by the processes of one machine)."""
    import websockets

    ready = asyncio.Event()
    got_state = 0
    received: list[list[float]] = [[] for _ in range(rounds)]
    round_done = [asyncio.Event() for _ in range(rounds)]
    opening = asyncio.Semaphore(50)

    async def subscriber() -> None:
        nonlocal got_state
        async with opening:
            ws = await websockets.connect(
                url,
                subprotocols=["graphql-transport-ws"],
                compression=None,
                proxy=None,
                max_queue=None,
                open_timeout=120,
            )
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": bearer}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": SUBSCRIPTION, "variables": {"d": delivery}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            while True:  # the state: this subscriber is registered
                message = json.loads(await ws.recv())
                if message["type"] == "next":
                    break
        got_state += 1
        if got_state == count:
            ready.set()
        for number in range(rounds):
            while True:
                raw = await ws.recv()
                if "DeliveryProgressEvent" in raw:
                    received[number].append(time.monotonic())
                    break
                message = json.loads(raw)
                if message["type"] == "ping":
                    await ws.send('{"type":"pong"}')
            if len(received[number]) == count:
                round_done[number].set()
        await ws.close()

    tasks = [asyncio.create_task(subscriber()) for _ in range(count)]
    await ready.wait()
    print("READY", flush=True)
    for number in range(rounds):
        await round_done[number].wait()
        print(json.dumps(received[number]), flush=True)
    await asyncio.gather(*tasks)


# --- the server, optionally under a profiler ----------------------------------------------------


def serve_profiled(port: int) -> None:
    """uvicorn in this process under pyinstrument; stops when stdin closes."""
    import uvicorn
    from pyinstrument import Profiler

    from app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), lambda: setattr(server, "should_exit", True))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        await server.serve()

    profiler = Profiler(async_mode="disabled", interval=0.0005)
    profiler.start()
    import uvloop

    uvloop.run(main())
    profiler.stop()
    PROFILE.write_text(profiler.output_text(unicode=True, color=False, show_all=False))


@contextmanager
def profiled_gateway(database_url: str, env: dict[str, str]) -> Iterator[Any]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", "--serve-profiled", str(port)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": database_url, "KETENPOORT_ENVIRONMENT": "test", **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the profiled gateway did not start")
        time.sleep(0.2)

    class Handle(str):
        pass

    handle = Handle(url)
    handle.process = process  # type: ignore[attr-defined]
    try:
        yield handle
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=120)


# --- the run -------------------------------------------------------------------------------


async def prepare(url: str) -> None:
    from db.demo import load_demo
    from db.engine import create_engine, create_sessionmaker
    from db.migrate import upgrade
    from resolvers.clock import today

    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session, session.begin():
        await load_demo(
            session, today=today(), sandbox_key=b"ketenpoort-benchmark-sandbox-key", pupils=20
        )
    await engine.dispose()


async def call(base: str, query: str, variables: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token('demo-shop', 'seller')}"}
    async with httpx.AsyncClient(timeout=120) as http:
        response = await http.post(
            f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    body = response.json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


async def new_delivery(base: str) -> tuple[str, str]:
    from resolvers.clock import today

    day = today()
    line = {
        "productId": "9789000000029",
        "variant": "SCHOOL",
        "quantity": 1000,
        "startDate": day.isoformat(),
        "activationUntilDate": (day + timedelta(days=90)).isoformat(),
        "licenceTerm": {"durationMonths": 12},
    }
    body = {
        "referenceId": f"fanout-{uuid.uuid4()}",
        "buyer": {"schoolId": "104A158"},
        "orderLines": [line],
    }
    answer = (await call(base, SUBMIT, {"input": body}))["deliverySubmit"]
    return answer["delivery"]["id"], answer["delivery"]["entitlements"][0]["id"]


async def measure(
    base: str, pid: int, subscribers: int, rounds: int, clients: int
) -> dict[str, Any]:
    delivery, entitlement = await new_delivery(base)
    idle = memory(pid)
    ws = base.replace("http://", "ws://") + "/graphql"
    bearer = f"Bearer {token('demo-shop', 'seller')}"
    shares = [
        subscribers // clients + (1 if i < subscribers % clients else 0) for i in range(clients)
    ]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fanout",
            "--client",
            ws,
            bearer,
            delivery,
            str(share),
            str(rounds),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for share in shares
        if share
    ]
    connect_started = time.monotonic()
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 600)
        if line.strip() != b"READY":
            raise RuntimeError(f"a client failed: {line!r}")
    connect_seconds = time.monotonic() - connect_started
    await asyncio.sleep(1)  # let the connection phase's garbage go
    connected = memory(pid)
    from_response: list[float] = []
    from_request: list[float] = []
    for number in range(rounds):
        variables = {
            "input": {
                "entitlementId": entitlement,
                "referenceId": uuid.uuid4().hex,
                "quantity": 999 - number,
            }
        }
        sent = time.monotonic()
        await call(base, LOWER, variables)
        answered = time.monotonic()
        times: list[float] = []
        for process in processes:
            assert process.stdout is not None
            times += json.loads(await asyncio.wait_for(process.stdout.readline(), 120))
        from_response += [t - answered for t in times]
        from_request += [t - sent for t in times]
        await asyncio.sleep(0.5)
    after = memory(pid)
    for process in processes:
        await process.wait()
    return {
        "subscribers": subscribers,
        "connect_seconds": connect_seconds,
        "p50": percentile(from_response, 50) * 1000,
        "p99": percentile(from_response, 99) * 1000,
        "max": max(from_response) * 1000,
        "p50_request": percentile(from_request, 50) * 1000,
        "p99_request": percentile(from_request, 99) * 1000,
        "idle_kib": idle["VmRSS"],
        "connected_kib": connected["VmRSS"],
        "after_kib": after["VmRSS"],
        "peak_kib": after["VmHWM"],
        "samples": len(from_response),
    }


async def main(sizes: list[int], rounds: int, clients: int, profile: bool) -> str:
    limit = raise_file_limit()
    if limit < max(sizes) + 200:
        raise SystemExit(f"the open file limit is {limit}: too low for {max(sizes)} subscribers")
    results = []
    async with throwaway_database() as url:
        await prepare(url)
        for size in sizes:
            starter = profiled_gateway if profile else gateway
            with starter(url, env={}) as base:  # a fresh process per size
                results.append(await measure(base, base.process.pid, size, rounds, clients))
            print(results[-1], flush=True)
    return report(results, rounds, clients, profile)


def report(results: list[dict[str, Any]], rounds: int, clients: int, profile: bool) -> str:
    sizes = " ".join(str(r["subscribers"]) for r in results)
    rows = "\n".join(
        f"| {r['subscribers']:,} | {r['p50']:.0f} ms | **{r['p99']:.0f} ms** | {r['max']:.0f} ms "
        f"| {r['p50_request']:.0f} / {r['p99_request']:.0f} ms "
        f"| {r['idle_kib'] / 1024:.0f} MB | **{r['connected_kib'] / 1024:.0f} MB** "
        f"| {r['after_kib'] / 1024:.0f} MB "
        f"| {(r['connected_kib'] - r['idle_kib']) / r['subscribers']:.0f} KiB "
        f"| {r['connect_seconds']:.0f} s |"
        for r in results
    )
    return f"""## Fan-out to live subscribers (issue #5, item 6)

Command: `.venv/bin/python -m bench.fanout --subscribers {sizes} --rounds {rounds} \
--clients {clients}{" --profile" if profile else ""}` (PostgreSQL, one uvicorn process, a throwaway
database; the subscribers are graphql-transport-ws clients in {clients} separate processes on the
same machine, so they share its cores with the server).

Every subscriber follows one delivery (`deliveryProgress(deliveryId, initialState: true)`); one
mutation then writes one event, which each of them receives; {rounds} rounds, so
{rounds} × N samples. Latency: receive time minus the time the mutation's response arrived (the
commit precedes it, so this is a lower bound); "from request" counts from sending the mutation
(an upper bound). Memory: the server process's VmRSS before the subscribers connect, with all
of them connected, and after the events.

| subscribers | p50 | p99 | max | from request p50 / p99 | RSS idle | RSS connected | RSS after \
| per subscriber | connecting took |
|---|---|---|---|---|---|---|---|---|---|
{rows}

Goal: 5,000 subscribers, p99 under 250 ms, under 300 MB."""


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, bearer, delivery, count, rounds = sys.argv
        raise_file_limit()
        asyncio.run(client(url, bearer, delivery, int(count), int(rounds)))
        raise SystemExit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-profiled":
        serve_profiled(int(sys.argv[2]))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--profile", action="store_true", help=f"write {PROFILE.name}")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    arguments = parser.parse_args()
    section = asyncio.run(
        main(arguments.subscribers, arguments.rounds, arguments.clients, arguments.profile)
    )
    print(section)
    if not arguments.no_write:
        write_section("fanout", section)
