"""Real gateway processes: `ketenpoort migrate`, `ketenpoort demo` and uvicorn on a
free port, as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def token(self, supplier: str, *roles: str, school: str | None = None) -> str:
        args = [*CLI, "token", supplier, *[f"--scope={r}" for r in roles]]
        if school:
            args.append(f"--school={school}")
        return subprocess.check_output(args, env=self.env, cwd=ROOT, text=True).strip()


def start_gateway(
    database_url: str,
    *,
    demo: bool = True,
    extra_env: dict[str, str] | None = None,
    log_level: str = "warning",
    output: Any = None,
) -> Gateway:
    """uvicorn on a free port, returned once /healthz answers; `output`, a file open
    for writing, takes the process's stdout and stderr (else they are inherited)."""
    env = {**os.environ, "DATABASE_URL": database_url, **(extra_env or {})}
    subprocess.run([*CLI, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    if demo:
        subprocess.run(
            [*CLI, "demo", "--pupils", "100"], env=env, cwd=ROOT, check=True, capture_output=True
        )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app:create_app",
            "--factory",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--log-level",
            log_level,
        ],
        env=env,
        cwd=ROOT,
        stdout=output,
        stderr=output,
    )
    url = f"http://127.0.0.1:{port}"
    # /healthz is the readiness probe (database, migrations, live broker listening).
    # A generous bound: on a machine busy with other test runs, importing and
    # starting take tens of seconds.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Gateway(url, process, env)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gateway did not become ready in 120 s")


def stop_gateway(gateway: Gateway) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        gateway.process.kill()


@pytest.fixture(scope="module")
def sqlite_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway")
    gateway = start_gateway(f"sqlite+aiosqlite:///{folder / 'gateway.db'}")
    yield gateway
    stop_gateway(gateway)
