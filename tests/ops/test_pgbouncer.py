"""PgBouncer in front of PostgreSQL (issue 17.7): which pool mode works with the
gateway's named prepared statements (asyncpg's statement cache, used by SQLAlchemy's
asyncpg dialect and db/pg.py). Debian's PgBouncer, started by the test on loopback.

Found: transaction mode (PgBouncer 1.18, Debian 12) does not work: a statement
prepared on one server connection is executed on another ("prepared statement
__asyncpg_stmt_N__ does not exist"); session mode works, LISTEN included.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import IN_CI, POSTGRES_ADMIN_URL, token_for
from tests.e2e.conftest import free_port
from tests.ops.conftest import ops_settings, running_app

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

CONFIG = """
[databases]
* = host={host} port={port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = {mode}
default_pool_size = {pool}
max_client_conn = 200
unix_socket_dir =
logfile = {folder}/pgbouncer.log
ignore_startup_parameters = extra_float_digits
"""


@pytest.fixture
def pgbouncer() -> Iterator[object]:
    binary = shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if binary is None:
        message = "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    started: list[subprocess.Popen[bytes]] = []
    folders: list[str] = []

    def start(mode: str, pool: int) -> int:
        folder = tempfile.mkdtemp(prefix="ketenpoort-pgbouncer-")
        folders.append(folder)
        os.chmod(folder, 0o777)  # PgBouncer refuses to run as root: it runs as postgres
        server = make_url(POSTGRES_ADMIN_URL)
        listen = free_port()
        Path(folder, "users.txt").write_text(f'"{server.username}" ""\n')
        Path(folder, "pgbouncer.ini").write_text(CONFIG.format(
            host=server.host, port=server.port or 5432, listen=listen, folder=folder,
            mode=mode, pool=pool))
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        started.append(subprocess.Popen([binary, *user, f"{folder}/pgbouncer.ini"]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "listening on 127.0.0.1" in _read(Path(folder, "pgbouncer.log")):
                return listen
            time.sleep(0.1)
        raise RuntimeError("pgbouncer did not start: " + _read(Path(folder, "pgbouncer.log")))

    yield start
    for process in started:
        process.terminate()
        process.wait(10)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _reads_through(url: str, port: int) -> collections.Counter[str]:
    """320 reads, 8 at a time, through a gateway whose DATABASE_URL is PgBouncer."""
    via = make_url(url).set(port=port).render_as_string(hide_password=False)
    outcomes: collections.Counter[str] = collections.Counter()
    headers = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"}
    query = {"query": "{ entitlements(first: 5) { nodes { id status product { name } } } }"}
    async with running_app(ops_settings(via, rate_limit_per_second=0)) as client:
        broker = client.app.state.broker
        for _ in range(300):  # LISTEN through PgBouncer (bounded wait)
            if broker._listen_connection is not None:
                break
            await asyncio.sleep(0.05)
        outcomes["listening"] = broker._listen_connection is not None

        async def reader() -> None:
            for _ in range(40):
                body = (await client.post("/graphql", json=query, headers=headers)).json()
                outcomes["ok" if not body.get("errors") else "error"] += 1

        await asyncio.gather(*[reader() for _ in range(8)])
    return outcomes


async def test_session_mode_works_transaction_mode_does_not(
    postgres_database: str, pgbouncer: object
) -> None:
    session = await _reads_through(postgres_database, pgbouncer("session", 40))  # type: ignore[operator]
    assert session == {"ok": 320, "listening": 1}
    transaction = await _reads_through(postgres_database, pgbouncer("transaction", 4))  # type: ignore[operator]
    assert transaction["error"] > 0  # prepared statements land on another server connection
