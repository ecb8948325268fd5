"""Push to suppliers' endpoints (issue 18): 100 receivers on loopback, 1,000
events a second for 30 seconds; latency from an event's commit to its
receiver's answer, and the CPU the gateway and PostgreSQL spend per delivered
event.

Set-up: a throwaway PostgreSQL database with the demo, 100 shops (role seller),
each with one entitlement, and each with an events endpoint registered through
GraphQL (signed requests) that points at its own receiver port. One uvicorn
gateway process delivers. The receivers are one separate process with 100
listening sockets (a minimal HTTP/1.1 server on asyncio), which answers every
event with status 0 and notes the wall-clock time of its answer.

Load: a writer process commits 100 transactions a second of 10 events each
(ENTITLEMENT_QUANTITY_LOWERED of random shops' entitlements), inserted with SQL
the way db/outbox.py writes them (the position from `event_position()`), and notes the
wall-clock time after each COMMIT returns. The gateway learns of them only from
its own read of the stream (`KETENPOORT_PUSH_POLL_SECONDS`); nothing wakes it.

Latency is answer time minus commit time per event (both processes on one
machine, one clock). CPU is read from /proc: the gateway process, and the
PostgreSQL backends serving the benchmark's database (the writer's included,
reported apart from the gateway's), over the load window.

    .venv/bin/python -m bench.push [--seconds 30] [--rate 1000] [--receivers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.support import (
    ROOT,
    free_port,
    gateway,
    percentile,
    raw_url,
    throwaway_database,
    token,
    write_section,
)

COMMAND = "python -m bench.push"
OWN = " --own-server"
_on_own_server = False


def _own() -> bool:
    return _on_own_server


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _write(out: str, rows: list[tuple[str, float]]) -> None:
    Path(out).write_text("\n".join(f"{i} {t:.6f}" for i, t in rows))


# --- the receivers (a process of their own) ----------------------------------------------------


class _Receiver(asyncio.Protocol):
    def __init__(self, answered: list[tuple[str, float]]) -> None:
        self.answered = answered
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            batch = json.loads(body) if body else []
            answers = [{"id": e["id"], "status": 0, "statusMessage": "OK"} for e in batch]
            payload = json.dumps(answers).encode()
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
            moment = time.time()
            self.answered.extend((e["id"], moment) for e in batch)


async def _receivers(count: int, out: str) -> None:
    loop = asyncio.get_running_loop()
    answered: list[tuple[str, float]] = []
    servers = [
        await loop.create_server(lambda: _Receiver(answered), "127.0.0.1", 0) for _ in range(count)
    ]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print("READY " + json.dumps(ports), flush=True)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    _write(out, answered)


# --- the writer (a process of its own) ---------------------------------------------------------

INSERT = """
INSERT INTO event (tx_id, kind, school_id, status, delivery_id, entitlement_id, payload,
                   actor_supplier_id, actor_role)
SELECT (SELECT event_position()),
       'ENTITLEMENT_QUANTITY_LOWERED', e.school_id, e.status, e.delivery_id, e.id,
       '{"quantity": 30}'::json, NULL, 'seller'
FROM unnest($1::bigint[]) WITH ORDINALITY AS pick(id, n)
JOIN entitlement e ON e.id = pick.id
ORDER BY pick.n
RETURNING id
"""


async def _writer(url: str, rate: int, seconds: float, per_tx: int, out: str) -> None:
    from push.envelope import message_id

    entitlements = json.loads(os.environ["BENCH_ENTITLEMENTS"])
    connection = await asyncpg.connect(url)
    committed: list[tuple[str, float]] = []  # "event-id message-id", commit time
    interval = per_tx / rate
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        picks = [random.choice(entitlements) for _ in range(per_tx)]
        async with connection.transaction():
            ids = [r["id"] for r in await connection.fetch(INSERT, picks)]
        moment = time.time()
        committed.extend((f"{i} {message_id(i)}", moment) for i in ids)
        tick += 1
        delay = start + tick * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await connection.close()
    _write(out, committed)


# --- the benchmark -----------------------------------------------------------------------------


async def _setup(url: str, receivers: int) -> list[int]:
    """100 shops with one entitlement each; their ids."""
    connection = await asyncpg.connect(raw_url(url))
    school = await connection.fetchval("SELECT id FROM organisation WHERE rio_id = '104A158'")
    product = await connection.fetchval("SELECT id FROM product ORDER BY id LIMIT 1")
    entitlements = []
    for index in range(receivers):
        code = f"bench-shop-{index:03d}"
        supplier = await connection.fetchval(
            "INSERT INTO supplier (code, name) VALUES ($1, $1) RETURNING id", code
        )
        await connection.execute(
            "INSERT INTO supplier_role (supplier_id, role) VALUES ($1, 'seller')", supplier
        )
        delivery = await connection.fetchval(
            """INSERT INTO delivery (seller_id, reference_id, request_hash, buyer_school_id)
               VALUES ($1, $2, 'x', $3) RETURNING id""",
            supplier,
            f"bench-{index}",
            school,
        )
        entitlements.append(
            await connection.fetchval(
                """INSERT INTO entitlement (delivery_id, product_id, variant, school_id, quantity,
                       start_date, activation_until_date, licence_duration_months, status)
                   VALUES ($1, $2, 'SCHOOL', $3, 30, current_date, current_date + 60, 12,
                           'LINK_READY') RETURNING id""",
                delivery,
                product,
                school,
            )
        )
    await connection.close()
    return entitlements


REGISTER = """mutation ($input: PushEndpointInput!) {
  pushEndpointRegister(input: $input) { __typename } }"""


async def _sample_horizon(url: str, samples: list[tuple[float, int]]) -> None:
    """Every 20 ms: the newest event a stream reader may take now (db/events.py: below
    the horizon, `event_horizon()`). The writer commits its transactions one after the
    other, so each of its events is readable from the first sample at or above it."""
    connection = await asyncpg.connect(url)
    try:
        while True:
            newest = await connection.fetchval(
                "SELECT coalesce(max(id), 0) FROM event WHERE tx_id < event_horizon()"
            )
            samples.append((time.time(), int(newest)))
            await asyncio.sleep(0.02)
    finally:
        await connection.close()


def _readable_times(
    samples: list[tuple[float, int]], event_ids: dict[str, int]
) -> dict[str, float]:
    found: dict[str, float] = {}
    order = sorted(event_ids.items(), key=lambda item: item[1])
    index = 0
    for moment, newest in samples:
        while index < len(order) and order[index][1] <= newest:
            found[order[index][0]] = moment
            index += 1
    return found


#: The longest wait for the last events after the writer stopped.
DRAIN_SECONDS = 120.0


async def _drained(url: str, committed: int, bound: float) -> float:
    """Seconds until the endpoints' counters reach `committed` (at most `bound`)."""
    connection = await asyncpg.connect(url)
    started = time.monotonic()
    try:
        while time.monotonic() - started < bound:
            delivered = await connection.fetchval(
                "SELECT coalesce(sum(delivered_events), 0) FROM push_endpoint"
            )
            if delivered >= committed:
                break
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    return time.monotonic() - started


async def _postgres_pids(url: str) -> dict[int, str]:
    connection = await asyncpg.connect(raw_url(url))
    rows = await connection.fetch(
        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database()"
    )
    await connection.close()
    return {r["pid"]: r["application_name"] for r in rows}


def _pg_cpu(pids: set[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except OSError:
            pass
    return found


@contextlib.contextmanager
def own_server() -> Iterator[str]:
    """A PostgreSQL cluster of the benchmark's own (initdb in a temporary folder, a
    free port), so that other databases' open transactions on the machine's shared
    server cannot hold the stream back; yields its admin URL."""
    import pwd
    import shutil
    import tempfile

    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    folder = Path(tempfile.mkdtemp(prefix="ketenpoort-bench-pg-"))
    user = pwd.getpwnam("postgres")
    os.chown(folder, user.pw_uid, user.pw_gid)
    as_postgres = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    subprocess.run(
        [*as_postgres, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(
        [
            *as_postgres,
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


async def bench(seconds: float, rate: int, receivers: int, per_tx: int) -> str:
    async with throwaway_database("ketenpoort_bench_push") as url:
        env = {**os.environ, "DATABASE_URL": url}
        for command in (["migrate"], ["demo", "--pupils", "100"]):
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "cli", *command],
                env=env,
                cwd=ROOT,
                check=True,
            )
        entitlements = await _setup(url, receivers)
        tmp = Path(os.environ.get("TMPDIR", "/tmp"))
        answers_file = tmp / f"bench-push-answers-{os.getpid()}.txt"
        commits_file = tmp / f"bench-push-commits-{os.getpid()}.txt"
        receiver = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.push",
            "--receivers-process",
            str(receivers),
            str(answers_file),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert receiver.stdout is not None
        line = (await receiver.stdout.readline()).decode()
        ports = json.loads(line.split(" ", 1)[1])
        with gateway(url, env={"KETENPOORT_RATE_LIMIT_PER_SECOND": "0"}) as base:
            bearer = token("operator", "operator")
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                for index, port in enumerate(ports):
                    body = {
                        "url": f"http://127.0.0.1:{port}/events",
                        "auth": "SIGNED",
                        "secret": "bench-signing-secret-0123456789-abcdef",
                        "supplierCode": f"bench-shop-{index:03d}",
                    }
                    answer = await client.post(
                        "/graphql",
                        json={"query": REGISTER, "variables": {"input": body}},
                        headers={"Authorization": f"Bearer {bearer}"},
                    )
                    kind = answer.json()["data"]["pushEndpointRegister"]["__typename"]
                    assert kind == "PushEndpointSaved", answer.text
                status = """{ pushEndpoints { status { delivering } } }"""
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    listed = await client.post(
                        "/graphql",
                        json={"query": status},
                        headers={"Authorization": f"Bearer {bearer}"},
                    )
                    rows = listed.json()["data"]["pushEndpoints"]
                    if sum(r["status"]["delivering"] for r in rows) == receivers:
                        break
                    await asyncio.sleep(0.5)
            gateway_pid = base.process.pid
            before_pids = await _postgres_pids(url)
            gateway_before = cpu_seconds(gateway_pid)
            pg_before = _pg_cpu(set(before_pids))
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.push",
                "--writer-process",
                raw_url(url),
                str(rate),
                str(seconds),
                str(per_tx),
                str(commits_file),
                cwd=ROOT,
                env={**os.environ, "BENCH_ENTITLEMENTS": json.dumps(entitlements)},
            )
            profiler = None
            if os.environ.get("BENCH_PUSH_PYSPY"):  # a flat profile of the gateway under load
                profiler = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(gateway_pid),
                    "-d",
                    str(int(seconds)),
                    "-r",
                    "50",
                    "-f",
                    "raw",
                    "-o",
                    os.environ["BENCH_PUSH_PYSPY"],
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            started = time.monotonic()
            horizon: list[tuple[float, int]] = []
            sampler = asyncio.create_task(_sample_horizon(raw_url(url), horizon))
            await writer.wait()
            wrote_for = time.monotonic() - started
            if profiler is not None:
                await profiler.wait()
            # Wait until every committed event was answered (the endpoints' counters;
            # bounded), then read the CPU: the drain of a backlog is counted too.
            committed = len(commits_file.read_text().splitlines())
            drained = await _drained(raw_url(url), committed, DRAIN_SECONDS)
            gateway_cpu = cpu_seconds(gateway_pid) - gateway_before
            after_pids = await _postgres_pids(url)
            pg_after = _pg_cpu(set(after_pids) | set(before_pids))
            writer_pids = {p for p, name in after_pids.items() if not name} - set(before_pids)
            pg_total = sum(pg_after[p] - pg_before.get(p, 0.0) for p in pg_after)
            sampler.cancel()
            receiver.send_signal(signal.SIGTERM)
            await receiver.wait()
        commits: dict[str, float] = {}
        event_ids: dict[str, int] = {}
        for row in commits_file.read_text().splitlines():
            event, ident, moment = row.split()
            commits[ident] = float(moment)
            event_ids[ident] = int(event)
        answers: dict[str, float] = {}
        repeats = 0
        for row in answers_file.read_text().splitlines():
            ident, moment = row.split()
            if ident in answers:
                repeats += 1
            answers.setdefault(ident, float(moment))
        commits_file.unlink()
        answers_file.unlink()
        latencies = [answers[i] - t for i, t in commits.items() if i in answers]
        readable = _readable_times(horizon, event_ids)
        to_readable = [readable[i] - t for i, t in commits.items() if i in readable]
        after_readable = [answers[i] - readable[i] for i in answers if i in readable]
        delivered = len(latencies)
        missing = len(commits) - delivered
        del writer_pids
        load = os.getloadavg()
        lines = [
            "## Push to supplier endpoints (issue 18)"
            + (", own PostgreSQL" if _own() else ", the machine's shared PostgreSQL"),
            "",
            f"Command: `{COMMAND} --seconds {seconds:g} --rate {rate} --receivers {receivers}"
            f"{OWN if _own() else ''}`. "
            f"{receivers} receivers on loopback (one process, {receivers} ports), one gateway "
            f"process, a writer committing {rate // per_tx} transactions of {per_tx} events a "
            "second straight into the event table (the gateway only learns of them by reading "
            "the stream).",
            "",
            "| figure | value |",
            "|---|---|",
            f"| events committed | {len(commits):,} in {wrote_for:.1f} s "
            f"({len(commits) / wrote_for:,.0f}/s) |",
            f"| events answered by a receiver | {delivered:,} (missing {missing}, "
            f"repeated {repeats}; the last {drained:.1f} s after the writer stopped) |",
            f"| commit → receiver's answer, p50 | {percentile(latencies, 50) * 1000:.0f} ms |",
            f"| p95 | {percentile(latencies, 95) * 1000:.0f} ms |",
            f"| p99 (target ≤ 1,000 ms) | {percentile(latencies, 99) * 1000:.0f} ms |",
            f"| max | {max(latencies) * 1000:.0f} ms |",
            "| of which: commit → readable in the stream (the server's horizon), p50 / p99 | "
            f"{percentile(to_readable, 50) * 1000:.0f} / {percentile(to_readable, 99) * 1000:.0f}"
            " ms |",
            "| of which: readable → receiver's answer (the push itself), p50 / p99 | "
            f"{percentile(after_readable, 50) * 1000:.0f} / "
            f"{percentile(after_readable, 99) * 1000:.0f} ms |",
            f"| gateway CPU per delivered event | {gateway_cpu / max(delivered, 1) * 1e6:.0f} µs "
            f"({gateway_cpu:.1f} s over the window, the drain included) |",
            f"| PostgreSQL CPU per delivered event (all backends of the database, the "
            f"writer's included) | {pg_total / max(delivered, 1) * 1e6:.0f} µs "
            f"({pg_total:.1f} s) |",
            f"| load average at the end (1 / 5 / 15 min, 2 cores) | {load[0]:.1f} / "
            f"{load[1]:.1f} / {load[2]:.1f} |",
        ]
        return "\n".join(lines)


# --- the HTTP client alone ---------------------------------------------------------------------


async def _client_cost(receivers: int, requests: int, rounds: int) -> str:
    """CPU of this process per request for the push's client (push/transport.py via
    push/client.PushClient), httpx as the push used it before (a pool per origin),
    and aiohttp when it is importable, in alternating rounds against the receivers
    process; each request carries 3 events, as the push does at 10 events/s per
    endpoint."""
    from push.client import PushClient, Target
    from settings import Settings

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-push-client-{os.getpid()}.txt"
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.push", "--receivers-process", str(receivers), str(tmp),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    assert receiver.stdout is not None
    ports = json.loads((await receiver.stdout.readline()).decode().split(" ", 1)[1])
    urls = [f"http://127.0.0.1:{port}/events" for port in ports]
    batch = [
        {"id": str(uuid), "type": "mp.Entitlement", "data": {"quantity": 30}}
        for uuid in range(3)
    ]
    settings = Settings(push_allow_private_addresses=True)
    ours = PushClient(settings)
    pools = {
        url: httpx.AsyncClient(
            follow_redirects=False, timeout=10, trust_env=False,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
        )
        for url in urls
    }
    secret = "bench-signing-secret-0123456789-abcdef"

    async def with_ours(url: str) -> None:
        outcome = await ours.send(Target(0, url, "SIGNED", secret), batch)  # type: ignore[arg-type]
        assert outcome.answered, outcome

    async def with_httpx(url: str) -> None:
        body = json.dumps(batch, separators=(",", ":")).encode()
        response = await pools[url].post(
            url, content=body, headers={"Content-Type": "application/json"}
        )
        json.loads(response.content)

    variants: dict[str, Any] = {"push/transport.py": with_ours, "httpx": with_httpx}
    session = None
    try:
        import aiohttp  # not a dependency: measured when it happens to be importable
    except ImportError:
        aiohttp = None
    if aiohttp is not None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=4), auto_decompress=False
        )

        async def with_aiohttp(url: str) -> None:
            body = json.dumps(batch, separators=(",", ":")).encode()
            async with session.post(  # type: ignore[union-attr]
                url, data=body, headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as response:
                json.loads(await response.read())

        variants["aiohttp"] = with_aiohttp
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            for url in urls:  # warm: connections open
                await call(url)
            started = time.process_time()
            for index in range(requests):
                await asyncio.gather(*(call(urls[(index * 10 + k) % len(urls)]) for k in range(10)))
            results[name].append((time.process_time() - started) / (requests * 10) * 1e6)
    await ours.close()
    for pool in pools.values():
        await pool.aclose()
    if session is not None:
        await session.close()
    receiver.send_signal(signal.SIGTERM)
    await receiver.wait()
    tmp.unlink(missing_ok=True)
    lines = [
        f"Client alone: `{COMMAND} --client-only` ({receivers} receivers, {rounds} rounds of "
        f"{requests * 10:,} requests of 3 events, 10 at a time, variants alternating; CPU of "
        "the sending process per request, median (all rounds)):",
        "",
        "| client | CPU per request |",
        "|---|---|",
    ]
    for name, figures in results.items():
        shown = ", ".join(f"{f:.0f}" for f in figures)
        lines.append(f"| {name} | {percentile(figures, 50):.0f} µs ({shown}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--receivers-process":
        asyncio.run(_receivers(int(argv[1]), argv[2]))
        return
    if argv and argv[0] == "--writer-process":
        url, rate, seconds, per_tx, out = argv[1:6]
        asyncio.run(_writer(url, int(rate), float(seconds), int(per_tx), out))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--receivers", type=int, default=100)
    parser.add_argument("--per-transaction", type=int, default=10)
    parser.add_argument(
        "--own-server",
        action="store_true",
        help="run on a PostgreSQL cluster of its own (initdb), not the machine's shared one",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    parser.add_argument(
        "--client-only", action="store_true", help="only the HTTP client's CPU per request"
    )
    args = parser.parse_args(argv)
    if args.client_only:
        print(asyncio.run(_client_cost(args.receivers, 200, 5)))
        return
    with contextlib.ExitStack() as stack:
        if args.own_server:
            from bench import support

            global _on_own_server
            support.ADMIN_URL = stack.enter_context(own_server())
            _on_own_server = True
        body = asyncio.run(bench(args.seconds, args.rate, args.receivers, args.per_transaction))
    print(body)
    if not args.no_write:
        write_section("push-own-server" if args.own_server else "push", body)


if __name__ == "__main__":
    main()


__all__: list[Any] = []
