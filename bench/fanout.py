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
import base64
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
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
    ... on DeliveryProgressEvent { cursor kind occurredAt }
    ... on EntitlementSnapshot { cursor } } }"""
SUBMIT = """mutation ($input: DeliveryInput!) { deliverySubmit(input: $input) {
  __typename ... on DeliverySubmitted { delivery { id entitlements { id } } } } }"""
LOWER = """mutation ($input: EntitlementQuantityInput!) {
  entitlementLowerQuantity(input: $input) { __typename } }"""
PROFILE = ROOT / "bench" / "fanout-profile.txt"
GCWATCH = Path(tempfile.gettempdir()) / f"ketenpoort-fanout-gc-{os.getpid()}.json"
GCWATCH_ENV = {
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT / "bench" / "gcwatch"), os.environ.get("PYTHONPATH")])
    ),
    "KETENPOORT_BENCH_GCWATCH": str(GCWATCH),
}


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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


# --- the client processes ----------------------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """A minimal graphql-transport-ws client on a raw asyncio protocol: the receive
    time is taken when the frame's bytes arrive, and a client costs the machine
    (which it shares with the server) a few microseconds per message, not the tens a
    full client library needs."""

    def __init__(self, host: str, port: int, init: str, subscribe: str, client: Client) -> None:
        self.host, self.port = host, port
        self.init, self.subscribe = init, subscribe
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.registered = False
        self.round = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET /graphql HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )

    def send(self, text: str | bytes, opcode: int = 1) -> None:
        """A masked client frame (RFC 6455 §5.3): text, or a pong's bytes."""
        assert self.transport is not None
        data = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        length = len(data)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        else:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buffer[:end]:
                raise RuntimeError(self.buffer[:end].decode(errors="replace"))
            self.upgraded = True
            self.buffer = self.buffer[end + 4 :]
            self.send(self.init)
        while len(self.buffer) >= 2:
            opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                (length,), offset = struct.unpack("!H", self.buffer[2:4]), 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                (length,), offset = struct.unpack("!Q", self.buffer[2:10]), 10
            if len(self.buffer) < offset + length:
                return
            payload = self.buffer[offset : offset + length]
            self.buffer = self.buffer[offset + length :]
            self.frame(opcode, payload, now)

    def frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == 9:  # websocket ping
            self.send(payload, opcode=10)  # the ping's bytes back, as the RFC asks
        elif opcode == 8:
            raise RuntimeError(f"closed by the server: {payload[2:]!r}")
        elif b"DeliveryProgressEvent" in payload:
            self.client.received(self.round, now, payload)
            self.round += 1
        elif b"EntitlementSnapshot" in payload and not self.registered:
            self.registered = True
            self.client.registered()
        elif b"connection_ack" in payload:
            self.send(self.subscribe)
        elif b'"ping"' in payload:
            self.send('{"type":"pong"}')


class Client:
    """One client process: `count` subscribers. Prints READY once every one has
    the state (so each is registered), then one line per round with every
    subscriber's receive time (monotonic clock, shared by the processes of one
    machine)."""

    def __init__(self, count: int, rounds: int) -> None:
        self.count = count
        self.waiting = count
        self.ready = asyncio.Event()
        self.times: list[list[float]] = [[] for _ in range(rounds)]
        #: When each round's event occurred (its transaction began), on the monotonic clock.
        self.occurred: list[float] = [0.0] * rounds
        self.done = [asyncio.Event() for _ in range(rounds)]

    def registered(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.ready.set()

    def received(self, number: int, at: float, payload: bytes) -> None:
        if not self.times[number]:  # the same event for all: read its time once
            message = json.loads(payload)
            event = message["payload"]["data"]["deliveryProgress"]
            occurred = datetime.fromisoformat(event["occurredAt"]).timestamp()
            self.occurred[number] = occurred - (time.time() - time.monotonic())
        self.times[number].append(at)
        if len(self.times[number]) == self.count:
            self.done[number].set()


async def client(url: str, bearer: str, delivery: str, count: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    init = json.dumps({"type": "connection_init", "payload": {"Authorization": bearer}})
    subscribe = json.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": SUBSCRIPTION, "variables": {"d": delivery}},
        }
    )
    state = Client(count, rounds)
    opening = asyncio.Semaphore(50)

    async def connect() -> None:
        async with opening:
            await loop.create_connection(
                lambda: Subscriber(host, int(port), init, subscribe, state), host, int(port)
            )

    await asyncio.gather(*(connect() for _ in range(count)))
    await state.ready.wait()
    print("READY", flush=True)
    for number in range(rounds):
        await state.done[number].wait()
        times = state.times[number]
        print(json.dumps({"times": times, "occurred": state.occurred[number]}), flush=True)
    # Stay connected until the run has read the server's figures (stdin closes then):
    # the disconnects are not part of the measurement.
    await loop.run_in_executor(None, sys.stdin.read)


# --- the server, optionally under a profiler ----------------------------------------------------


def serve_profiled(port: int) -> None:
    """uvicorn in this process; pyinstrument records between a "start" and a "stop"
    line on stdin (the fan-out rounds only), and the server stops when stdin closes."""
    import uvicorn
    import uvloop
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

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
            ws_per_message_deflate=False,  # as `ketenpoort serve`
        )
    )
    profiler = Profiler(async_mode="disabled", interval=0.0005)

    def command() -> None:
        line = sys.stdin.readline().strip()
        if line == "start":
            profiler.start()
        elif line == "stop":
            profiler.stop()
            tree = profiler.output_text(unicode=True, color=False, show_all=False)
            flat = profiler.output(
                ConsoleRenderer(flat=True, flat_time="total", show_all=True, unicode=True)
            )
            PROFILE.write_text(tree + "\n\nTotal time per function:\n" + flat)
        elif not line:
            server.should_exit = True

    async def main() -> None:
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), command)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        await server.serve()

    uvloop.run(main())


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


def profiler_command(base: Any, command: str) -> None:
    process = getattr(base, "process", None)
    if process is not None and process.stdin is not None:
        process.stdin.write(f"{command}\n".encode())
        process.stdin.flush()


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
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            limit=2**24,  # a round's line holds every subscriber's receive time
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
    from_event: list[float] = []
    profiler_command(base, "start")
    os.kill(pid, signal.SIGUSR2)  # bench/gcwatch: count the collections of the rounds
    cpu_before = cpu_seconds(pid)
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
            line = json.loads(await asyncio.wait_for(process.stdout.readline(), 120))
            times += line["times"]
            occurred = line["occurred"]
        from_response += [t - answered for t in times]
        from_event += [t - occurred for t in times]
        from_request += [t - sent for t in times]
        await asyncio.sleep(0.5)
    user, system = (b - a for a, b in zip(cpu_before, cpu_seconds(pid), strict=True))
    cpu = user + system
    profiler_command(base, "stop")
    GCWATCH.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    for _ in range(600):  # the gateway writes it when it handles the signal
        if GCWATCH.exists():
            break
        await asyncio.sleep(0.05)
    collections = json.loads(GCWATCH.read_text())
    after = memory(pid)
    for process in processes:
        assert process.stdin is not None
        process.stdin.close()
        await process.wait()
    return {
        "subscribers": subscribers,
        "connect_seconds": connect_seconds,
        "p50": percentile(from_response, 50) * 1000,
        "p99": percentile(from_response, 99) * 1000,
        "max": max(from_response) * 1000,
        "p50_request": percentile(from_request, 50) * 1000,
        "p99_request": percentile(from_request, 99) * 1000,
        "p50_event": percentile(from_event, 50) * 1000,
        "p99_event": percentile(from_event, 99) * 1000,
        "idle_kib": idle["VmRSS"],
        "connected_kib": connected["VmRSS"],
        "after_kib": after["VmRSS"],
        "peak_kib": after["VmHWM"],
        "cpu_us_per_delivery": cpu / (rounds * subscribers) * 1e6,
        "system_share": system / cpu if cpu else 0.0,
        "full_collections": collections["2"]["runs"],
        "full_collection_ms": collections["2"]["longest"] * 1000,
        "young_collection_ms": collections["0"]["seconds"] * 1000
        + collections["1"]["seconds"] * 1000,
        "tracked_objects": collections["tracked_objects"],
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
            with starter(url, env=GCWATCH_ENV) as base:  # a fresh process per size
                results.append(await measure(base, base.process.pid, size, rounds, clients))
            print(results[-1], flush=True)
    return report(results, rounds, clients, profile)


def report(results: list[dict[str, Any]], rounds: int, clients: int, profile: bool) -> str:
    sizes = " ".join(str(r["subscribers"]) for r in results)
    rows = "\n".join(
        f"| {r['subscribers']:,} | {r['p50']:.0f} ms | **{r['p99']:.0f} ms** | {r['max']:.0f} ms "
        f"| {r['p50_event']:.0f} / **{r['p99_event']:.0f} ms** "
        f"| {r['p50_request']:.0f} / {r['p99_request']:.0f} ms "
        f"| {r['idle_kib'] / 1024:.0f} MB | **{r['connected_kib'] / 1024:.0f} MB** "
        f"| {r['after_kib'] / 1024:.0f} MB | {r['peak_kib'] / 1024:.0f} MB "
        f"| {(r['connected_kib'] - r['idle_kib']) / r['subscribers']:.0f} KiB "
        f"| {r['cpu_us_per_delivery']:.0f} µs ({r['system_share']:.0%} in the kernel) "
        f"| {r['full_collections']} ({r['full_collection_ms']:.0f} ms) "
        f"| {r['young_collection_ms']:.0f} ms | {r['tracked_objects']:,} "
        f"| {r['connect_seconds']:.0f} s |"
        for r in results
    )
    return f"""## Fan-out to live subscribers (issue #5, item 6)

Command: `.venv/bin/python -m bench.fanout --subscribers {sizes} --rounds {rounds} \
--clients {clients}{" --profile" if profile else ""}` (PostgreSQL, one uvicorn process started as
`ketenpoort serve` starts it, a throwaway database; the subscribers are minimal
graphql-transport-ws clients in {clients} separate processes on the same machine, so they share
its two cores with the server).

Every subscriber follows one delivery (`deliveryProgress(deliveryId, initialState: true)`); one
mutation then writes one event, which each of them receives; {rounds} rounds, so
{rounds} × N samples. Latency, three ways: receive time minus the time the mutation's response
arrived (the commit precedes it: a lower bound); receive time minus the event's `occurredAt`
(the start of the writing transaction, on the same machine's clock: an upper bound that adds
only the transaction itself); and from sending the mutation (a looser upper bound: it adds the
HTTP request, authentication, and the response waiting behind the fan-out its own commit
started). Memory: the server process's VmRSS before the subscribers connect,
with all of them connected, after the events, and its peak (VmHWM). Server CPU per delivery: the
gateway process's CPU time during the rounds (the mutation included) over the messages sent, the
figure that does not depend on what else the machine runs. Garbage collection: full
collections during the rounds (and the longest pause), the time spent in young collections,
and the objects the collector tracks (bench/gcwatch).

| subscribers | p50 | p99 | max | from occurredAt p50 / p99 | from request p50 / p99 \
| RSS idle | RSS connected | RSS after | RSS peak | per subscriber | server CPU per delivery \
| full GC (longest) \
| young GC | tracked objects | connecting took |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{rows}

Goal: 5,000 subscribers, p99 under 250 ms, under 300 MB.

Where the time goes, and what made it fit (issue #5): with strawberry running every
subscription as its own pipeline (an execution, extension hooks and a send per subscriber per
event), 5,000 subscribers took p99 4.2 s and 371 MB. Now the gateway implements the websocket
protocols itself (`live/transport.py`) and a subscription's live part runs in its operation's
task once its initial state or replay is sent (`live/streams.py`): the event is executed and
encoded once per operation, variables and caller, the broker writes that text to each idle
subscription in its own pass (no task wake-up per subscriber; a send that has to wait for a full
socket goes on in a task of its own), through the server's own ASGI `send`. A full garbage
collection over the ~160 objects each open connection keeps took 0.7-1.0 s at 5,000
subscribers and used to start in the middle of a burst; the gateway now freezes its
startup heap and raises the young-generation threshold (`KETENPOORT_GC_YOUNG_THRESHOLD`), and
no full collection ran during the rounds. What is left per delivery is about a third in the kernel
(one write per socket), the rest in the websocket framing (uvicorn, websockets) and the loop
above it."""


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, bearer, delivery, count, rounds = sys.argv
        raise_file_limit()
        import uvloop

        uvloop.run(client(url, bearer, delivery, int(count), int(rounds)))
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
