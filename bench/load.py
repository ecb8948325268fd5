"""Load generation for the benchmarks: a minimal keep-alive HTTP/1.1 client (so the
load generator takes as little as possible of the two cores it shares with the
gateway and PostgreSQL), the same load as raw SQL through asyncpg, and the
statements a GraphQL request sends, captured from an in-process gateway.

A run is closed-loop: `clients` tasks, each sending its next request when the
previous answer is complete, for `seconds` after a short warm-up. It reports
every latency, the requests per second and the CPU seconds the load generator
itself used (`time.process_time`), so a report can say whether the client was the
bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.support import percentile

WARM_UP_SECONDS = 1.0


@dataclass
class Run:
    """The outcome of one closed-loop run."""

    name: str
    latencies: list[float]
    seconds: float
    errors: int = 0
    client_cpu: float = 0.0
    server_cpu: dict[str, float] = field(default_factory=dict)
    first_error: str | None = None

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        """Percentile in milliseconds."""
        return percentile(self.latencies, q) * 1000

    @property
    def client_share(self) -> float:
        """CPU the load generator used, as a share of one core."""
        return self.client_cpu / self.seconds if self.seconds else 0.0


# --- HTTP ---------------------------------------------------------------------------------------


def http_request(host: str, port: int, bearer: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {bearer}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def _http_client(
    host: str, port: int, requests: Sequence[bytes], offset: int, stop: float, check: bool
) -> tuple[list[float], int, str | None]:
    reader, writer = await asyncio.open_connection(host, port)
    latencies: list[float] = []
    errors = 0
    first_error = None
    n = offset
    try:
        while time.perf_counter() < stop:
            request = requests[n % len(requests)]
            n += 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for header in head.split(b"\r\n"):
                if header[:15].lower() == b"content-length:":
                    length = int(header[15:])
            payload = await reader.readexactly(length)
            elapsed = time.perf_counter() - started
            ok = head.startswith(b"HTTP/1.1 200") and (
                not check or b'"errors"' not in payload[:20000]
            )
            if ok:
                latencies.append(elapsed)
            else:
                errors += 1
                first_error = first_error or payload[:500].decode(errors="replace")
    finally:
        writer.close()
    return latencies, errors, first_error


async def http_run(
    name: str,
    base: str,
    requests: Sequence[bytes],
    clients: int,
    seconds: float,
    *,
    server_pids: Callable[[], dict[str, list[int]]] | None = None,
    check: bool = True,
) -> Run:
    """`clients` keep-alive connections posting `requests` (round robin) for `seconds`."""
    host, port = base.removeprefix("http://").split(":")
    warm = time.perf_counter() + WARM_UP_SECONDS
    await asyncio.gather(
        *[_http_client(host, int(port), requests, i, warm, False) for i in range(clients)]
    )
    pids = server_pids() if server_pids else {}
    before = {k: {pid: cpu_seconds([pid]) for pid in v} for k, v in pids.items()}
    cpu = time.process_time()
    started = time.perf_counter()
    results = await asyncio.gather(
        *[
            _http_client(host, int(port), requests, i * 7, started + seconds, check)
            for i in range(clients)
        ]
    )
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - cpu
    # Processes that started during the run (a worker's first PostgreSQL connection,
    # opened on demand) count with all their CPU.
    after = server_pids() if server_pids else {}
    server = {
        k: sum(cpu_seconds([pid]) - before[k].get(pid, 0.0) for pid in set(v) | set(after[k]))
        for k, v in pids.items()
    }
    latencies = [t for r in results for t in r[0]]
    errors = sum(r[1] for r in results)
    first = next((r[2] for r in results if r[2]), None)
    return Run(name, latencies, elapsed, errors, client_cpu, server, first)


# --- raw SQL --------------------------------------------------------------------------------------

#: One request as the gateway sent it: transactions of (statement, parameters).
Request = list[list[tuple[str, tuple[Any, ...]]]]


async def _sql_client(
    pool: asyncpg.Pool, requests: Sequence[Request], offset: int, stop: float
) -> list[float]:
    latencies = []
    n = offset
    while time.perf_counter() < stop:
        request = requests[n % len(requests)]
        n += 1
        started = time.perf_counter()
        async with pool.acquire() as conn:
            for transaction in request:
                async with conn.transaction():
                    for statement, parameters in transaction:
                        await conn.fetch(statement, *parameters)
        latencies.append(time.perf_counter() - started)
    return latencies


async def sql_run(
    name: str,
    dsn: str,
    requests: Sequence[Request],
    clients: int,
    seconds: float,
    pool_size: int,
    *,
    server_pids: Callable[[], dict[str, list[int]]] | None = None,
) -> Run:
    """The same statements straight through asyncpg: `clients` tasks on a pool of
    `pool_size` connections (the gateway's own pool size)."""
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    try:
        warm = time.perf_counter() + WARM_UP_SECONDS
        await asyncio.gather(*[_sql_client(pool, requests, i, warm) for i in range(clients)])
        pids = server_pids() if server_pids else {}
        before = {k: cpu_seconds(v) for k, v in pids.items()}
        cpu = time.process_time()
        started = time.perf_counter()
        results = await asyncio.gather(
            *[_sql_client(pool, requests, i * 7, started + seconds) for i in range(clients)]
        )
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu
        server = {k: cpu_seconds(v) - before[k] for k, v in pids.items()}
    finally:
        await pool.close()
    return Run(name, [t for r in results for t in r], elapsed, 0, client_cpu, server)


# --- capturing what the gateway sends -------------------------------------------------------------


async def capture(url: str, bearer: str, body: dict[str, Any]) -> tuple[Request, dict[str, Any]]:
    """Run one GraphQL request on an in-process gateway (same code, same database) and
    record its statements per transaction; the request runs twice and the second is
    kept, so warm caches behave as under load. Returns the statements and the answer."""
    import httpx
    from sqlalchemy import event

    from app import create_app
    from db.engine import create_engine, create_sessionmaker
    from settings import Environment, Settings

    engine = create_engine(url)
    transactions: Request = []
    current: list[tuple[str, tuple[Any, ...]]] | None = None

    def begin(_conn: Any) -> None:
        nonlocal current
        current = []
        transactions.append(current)

    def execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if current is None:
            begin(None)
        assert current is not None
        current.append((statement, tuple(parameters or ())))

    event.listen(engine.sync_engine, "begin", begin)
    event.listen(engine.sync_engine, "before_cursor_execute", execute)
    settings = Settings(environment=Environment.TEST, database_url=url, rate_limit_per_second=0)  # type: ignore[call-arg]
    app = create_app(settings, sessionmaker=create_sessionmaker(engine))
    headers = {"Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        await client.post("/graphql", json=body, headers=headers)
        transactions.clear()
        current = None
        answer = (await client.post("/graphql", json=body, headers=headers)).json()
    await engine.dispose()
    return [t for t in transactions if t], answer


# --- CPU of processes -----------------------------------------------------------------------------


def cpu_seconds(pids: Sequence[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            pass
    return total


def processes(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                pass
    tree = [root]
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.append(pid)
                changed = True
    return tree
