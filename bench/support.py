"""What every benchmark shares: a throwaway PostgreSQL database, a real uvicorn
process on it, the machine description, percentiles, and writing one section of
bench/RESULTS.md without touching the others.

Benchmarks never assume the server's `test` database is empty and never write
into it: each creates its own database and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
ADMIN_URL = os.environ.get(
    "KETENPOORT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                cpu = text_line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `name` of RESULTS.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else (
            "# Benchmark results\n\nEach section is written by the benchmark named in it, with "
            "the command that produced it and the machine it ran on. Figures are compared "
            "within one run (ratios), because these machines are shared and noisy.\n"
        )
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{start}\n{body.rstrip()}\n\n_Measured {stamp} on {machine()}._\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _m: block, text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + block + "\n")
    )
    RESULTS.write_text(text)


@asynccontextmanager
async def throwaway_database(prefix: str = "ketenpoort_bench") -> AsyncIterator[str]:
    """A fresh PostgreSQL database; yields its SQLAlchemy URL and drops it after."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def raw_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayURL(str):
    """The gateway's base URL, with the uvicorn process behind it (for its memory)."""

    process: subprocess.Popen[bytes]


@contextmanager
def gateway(
    database_url: str, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[GatewayURL]:
    """uvicorn serving the gateway on `database_url`; yields its base URL."""
    port = free_port()
    # As an operator runs it: `ketenpoort serve` (uvloop and httptools, a socket per
    # worker, gateway/workers.py, the gateway's request lines, no uvicorn access log).
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "KETENPOORT_ENVIRONMENT": "test",
            **(env or {}),
        },
    )
    url = GatewayURL(f"http://127.0.0.1:{port}")
    url.process = process
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(f"{url}/healthz", timeout=1).status_code == 200
                    and listening(port) >= workers
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def worker_pids(master: int) -> list[int]:
    """The worker processes of `ketenpoort serve` (its spawned children; not
    multiprocessing's resource tracker); the master itself with one worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == master and b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return sorted(found) or [master]


def listening(port: int) -> int:
    """How many sockets listen on `port` (one per worker: gateway/workers.py)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def best(work: Callable[[], Any], rounds: int) -> float:
    """The least CPU time (process time, s) one call of `work` took in `rounds`."""
    times = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def token(supplier: str, *roles: str, hours: int = 2) -> str:
    from datetime import timedelta

    from gateway.tokens import mint_token
    from settings import Environment, Settings

    return mint_token(
        Settings(environment=Environment.TEST),
        supplier,
        list(roles),
        lifetime=timedelta(hours=hours),
    )


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]
