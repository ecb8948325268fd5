"""`ketenpoort serve --workers 2` as an operator runs it: metrics from both workers
added up on a port of their own (prometheus-client's multiprocess mode), one JSON
request line per request on standard error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import token_for
from tests.e2e.conftest import CLI, ROOT, free_port
from tests.ops.test_observability import value
from tests.waiting import until


def test_two_workers_metrics_on_their_own_port_and_json_lines(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "KETENPOORT_METRICS_PORT": str(metrics_port),
        "KETENPOORT_LOG_FORMAT": "json",
        "KETENPOORT_RATE_LIMIT_PER_SECOND": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    subprocess.run([*CLI, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*CLI, "demo", "--pupils", "20"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    errors = tmp_path / "stderr.log"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [*CLI, "serve", "--workers", "2", "--port", str(port)],
            env=env, cwd=ROOT, stderr=stderr, stdout=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready = 0
        while time.monotonic() < deadline and ready < 5:  # both workers up, most likely
            try:
                ready += httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready == 5, errors.read_text()[-2000:]
        body = {"query": "query Counted { products(first: 1) { nodes { productId } } }"}
        headers = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}",
                   "Connection": "close"}

        def call(_: int) -> int:
            return httpx.post(f"{url}/graphql", json=body, headers=headers, timeout=30).status_code

        # The kernel hands each new connection to one of the workers; a worker that is
        # still starting gets none. Send in rounds until the request lines name two
        # workers (a generous bound), counting every request sent.
        sent = 0
        with ThreadPoolExecutor(12) as pool:
            while True:
                statuses = list(pool.map(call, range(60)))
                assert statuses == [200] * 60
                sent += 60
                if len(_counted_pids(errors)) == 2 or time.monotonic() > deadline:
                    break
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 404  # not on the API port
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert value(text, "ketenpoort_requests_total", operation="Counted", role="seller",
                     outcome="ok") == sent
        assert value(text, "ketenpoort_request_seconds_count", operation="Counted") == sent
        _websocket_and_live_figures(url, metrics_port)
    finally:
        process.terminate()
        process.wait(30)
    counted = _counted(errors)
    assert len(counted) == sent
    assert len({line["pid"] for line in counted}) == 2  # both workers answered
    assert all(line["logger"] == "ketenpoort.request" and line["status"] == 200
               for line in counted)


def _counted(errors: Path) -> list[dict]:
    lines = [json.loads(line) for line in errors.read_text().splitlines()
             if line.startswith("{")]
    return [line for line in lines if line.get("operation") == "Counted"]


def _counted_pids(errors: Path) -> set[int]:
    try:
        return {line["pid"] for line in _counted(errors)}
    except json.JSONDecodeError:  # a line half written as we read
        return set()


def _websocket_and_live_figures(url: str, metrics_port: int) -> None:
    """An open subscription shows in the gauges (sampled once a second, summed over
    the workers); an event delivered to it shows in the live lag and event count."""
    from websockets.sync.client import connect

    from tests.e2e.test_subscriptions import SUBMIT
    from tests.ops.test_deployment import ENTITLED, _delivery

    def scrape() -> str:
        return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text

    shop = f"Bearer {token_for('demo-shop', 'seller')}"
    ws_url = url.replace("http", "ws") + "/graphql"
    with connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": shop}}))
        assert json.loads(ws.recv(30))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ENTITLED}}))
        deadline = time.monotonic() + 90
        text = scrape()
        while time.monotonic() < deadline and (
            value(text, "ketenpoort_live_subscriptions") < 1
            or value(text, "ketenpoort_websocket_connections") < 1
        ):
            time.sleep(0.2)
            text = scrape()
        assert value(text, "ketenpoort_websocket_connections") == 1
        assert value(text, "ketenpoort_live_subscriptions") == 1
        submitted = httpx.post(
            f"{url}/graphql",
            json={**_delivery(f"serve-{time.time_ns()}"), "query": SUBMIT},
            headers={"Authorization": shop},
            timeout=30,
        ).json()
        assert submitted["data"]["deliverySubmit"]["__typename"] == "DeliverySubmitted"
        message = json.loads(ws.recv(90))
        assert message["type"] == "next", message
        text = scrape()
        assert value(text, "ketenpoort_live_events_total") >= 3
        assert value(text, "ketenpoort_live_lag_seconds_count") >= 3
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and value(scrape(), "ketenpoort_websocket_connections"):
        time.sleep(0.2)
    assert value(scrape(), "ketenpoort_websocket_connections") == 0


def _serve(tmp_path: Path, workers: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`ketenpoort serve --workers N` on a fresh SQLite database, JSON request lines
    on standard error; returns once N sockets listen (one per worker)."""
    from bench.support import listening

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "KETENPOORT_LOG_FORMAT": "json",
        "KETENPOORT_RATE_LIMIT_PER_SECOND": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    subprocess.run([*CLI, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    errors = tmp_path / "stderr.log"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [*CLI, "serve", "--workers", str(workers), "--port", str(port)],
            env=env, cwd=ROOT, stderr=stderr, stdout=subprocess.DEVNULL,
        )
    def up() -> bool:
        assert process.poll() is None, errors.read_text()[-2000:]
        return listening(port) >= workers

    until(up, f"{workers} workers listening", seen=lambda: errors.read_text()[-2000:])
    return process, f"http://127.0.0.1:{port}", errors


def _burst(url: str, clients: int) -> None:
    """`clients` connections opened at once, one request on each, all kept open
    until every answer is in (as a pool of keep-alive clients connects)."""
    import asyncio

    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"query": "query Counted { __typename }"}).encode()
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token_for('demo-shop', 'seller')}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def burst() -> None:
        connections = await asyncio.gather(
            *[asyncio.open_connection(host, int(port)) for _ in range(clients)]
        )
        for _, writer in connections:
            writer.write(request)
        for reader, _ in connections:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            assert head.startswith(b"HTTP/1.1 200"), head
        for _, writer in connections:
            writer.close()

    asyncio.run(burst())


def test_a_burst_of_connections_is_spread_over_the_workers(tmp_path: Path) -> None:
    """Each worker listens on a socket of its own (gateway/workers.py): 32 connections
    opened at once are shared out by the kernel, not all taken by the worker that
    woke first (with one shared socket, all 32 landed on one worker)."""
    process, url, errors = _serve(tmp_path, 2)
    try:
        _burst(url, 32)
        until(lambda: len(_counted(errors)) >= 32, "32 request lines")
    finally:
        process.terminate()
        assert process.wait(30) == 0
    per_worker = Counter(line["pid"] for line in _counted(errors))
    assert sum(per_worker.values()) == 32
    # By the connections' addresses: fewer than 4 of 32 on one of two workers has a
    # chance of about 3 in a million.
    assert len(per_worker) == 2, per_worker
    assert min(per_worker.values()) >= 4, per_worker


def test_a_worker_that_dies_is_replaced_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    process, url, errors = _serve(tmp_path, 2)
    try:
        workers = _children(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        def replaced() -> bool:
            now = _children(process.pid)
            return len(now) == 2 and workers[0] not in now and listening_on(url) == 2

        until(replaced, "a new worker listening in place of the killed one")
        assert workers[0] not in _children(process.pid)
        assert listening_on(url) == 2
        _burst(url, 8)
    finally:
        process.terminate()
        code = process.wait(60)
    assert code == 0
    assert _children(process.pid) == []
    assert "ended (exit code -9); another in" in errors.read_text()


def listening_on(url: str) -> int:
    from bench.support import listening

    return listening(int(url.rsplit(":", 1)[1]))


def _children(pid: int) -> list[int]:
    """The live worker processes of the supervisor `pid`."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    workers = []
    for child in text.split():
        try:  # multiprocessing's resource tracker is a child too
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(int(child))
        except OSError:
            continue
    return workers


def test_a_port_another_server_listens_on_is_refused(tmp_path: Path) -> None:
    """Even when that server's sockets share the port (SO_REUSEPORT, as a second
    `ketenpoort serve` would): the kernel would split the traffic between the two."""
    from gateway.workers import STARTUP_FAILURE, listening_socket

    port = free_port()
    other = listening_socket("127.0.0.1", port)
    other.listen()
    try:
        env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
        done = subprocess.run([*CLI, "serve", "--workers", "2", "--port", str(port)],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        other.close()
    assert done.returncode == STARTUP_FAILURE
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_no_worker_outlives_a_killed_supervisor(tmp_path: Path) -> None:
    process, url, errors = _serve(tmp_path, 2)
    workers = _children(process.pid)
    assert len(workers) == 2
    process.kill()
    process.wait(30)
    until(lambda: not any(_alive(pid) for pid in workers), "the workers to end",
          seen=lambda: errors.read_text()[-2000:])
    assert listening_on(url) == 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
