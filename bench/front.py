"""The HTTP front's fixed cost (issue 14: `{ __typename }` ≤ 0.2 ms gateway CPU): one
uvicorn process serving the gateway, N keep-alive clients posting `{ __typename }`
with an operator's bearer token, the server's CPU read from /proc (its process tree)
before and after; the gateway as it is (/graphql served ahead of Starlette,
gateway/front.py, by the own handler gateway/http.py with its pipeline
gateway/pipeline.py), the same handler behind Starlette's middleware and router (the
front before gateway/front.py), the handler without its pipeline, and strawberry's
ASGI view over the same app and schema (what the front was before gateway/http.py),
alternated in the same run so that the machine's noise falls on all. First,
in-process: the handler and the whole ASGI app called directly (no socket).

    .venv/bin/python -m bench.front [--clients 1,8] [--seconds 5] [--rounds 3] [--calls 4000]

Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bench.load import http_request, http_run, process_tree
from bench.support import ROOT, free_port, throwaway_database, token, write_section

TYPENAME = {"query": "{ __typename }"}
VARIANTS = {
    "own": "app:create_app",
    "own behind Starlette": "bench.front:starlette_app",
    "own, no pipeline": "bench.front:extensions_app",
    "strawberry": "bench.front:strawberry_app",
}


def starlette_app() -> Any:
    """The gateway with /graphql served through Starlette's middleware and router (the
    request observer, the body limit, routing) instead of ahead of them."""
    from app import create_app

    app = create_app()
    app.graphql = None
    return app


def extensions_app() -> Any:
    """The gateway with its own handler but without the pipeline (gateway/pipeline.py):
    every request through strawberry's `Schema.execute` and its extensions."""
    from app import create_app

    app = create_app()
    app.state.graphql.pipeline = None
    return app


async def in_process(calls: int, rounds: int) -> dict[str, list[float]]:
    """CPU per `{ __typename }` of the handler alone and of the whole ASGI app (the
    front, or Starlette's middleware and routing, and the handler), called directly
    (no socket, no uvicorn): `time.process_time()` over `calls` calls, alternated."""
    from app import create_app, tune_gc
    from settings import Environment, Settings

    settings = Settings(
        environment=Environment.TEST, rate_limit_per_second=0, log_level="WARNING"
    )
    bearer = token("operator", "operator")
    body = b'{"query":"{ __typename }"}'
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        "headers": [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {bearer}".encode()),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])

    app = create_app(settings, sessionmaker=lambda: None)  # type: ignore[arg-type,return-value]
    tune_gc(settings)  # as the lifespan does in a server
    handler = app.state.graphql
    pipeline = handler.pipeline
    found: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, target, on, front in (
            ("handler, pipeline", handler, True, True),
            ("handler, no pipeline", handler, False, True),
            ("app, pipeline", app, True, True),
            ("app behind Starlette, pipeline", app, True, False),
            ("app, no pipeline", app, False, True),
        ):
            handler.pipeline = pipeline if on else None
            app.graphql = handler if front else None
            for _ in range(50):  # warm (caches)
                await target(dict(scope), receive, send)
            started = time.process_time()
            for _ in range(calls):
                await target(dict(scope), receive, send)
            spent = time.process_time() - started
            found.setdefault(label, []).append(spent / calls * 1e6)
    assert sent[-1] == b'{"data":{"__typename":"Query"}}', sent[-1]
    return found


def strawberry_app() -> Any:
    """The gateway with strawberry's ASGI view at /graphql in place of our handler:
    the same schema, context, token check and session lifetime as the view the
    gateway had before gateway/http.py."""
    from starlette.requests import Request
    from strawberry.asgi import GraphQL

    from app import create_app
    from resolvers.context import Context

    app = create_app()
    front = app.state.graphql

    class View(GraphQL):  # type: ignore[type-arg]
        async def get_context(self, request: Any, response: Any) -> Context:
            context = Context(front.settings, front.sessionmaker, request, response)
            context.limiter = front.limiter
            context.supplier_cache = front.supplier_cache
            context.audit_buffer = front.audit_buffer
            if isinstance(request, Request):
                try:
                    context.caller = front.verifier.verify(request.headers.get("authorization"))
                except Exception as error:  # TokenError
                    context.auth_error = str(error)
            request.state.gateway_context = context
            return context

        async def run(self, request: Any, context: Any = None, root_value: Any = None) -> Any:
            from strawberry.types.unset import UNSET

            try:
                return await super().run(
                    request,
                    UNSET if context is None else context,
                    UNSET if root_value is None else root_value,
                )
            finally:
                found = getattr(request.state, "gateway_context", None)
                if found is not None:
                    await found.finish()

    view = View(front.schema, graphql_ide=None)
    app.graphql = None  # /graphql through Starlette's router, to the view
    for route in app.router.routes:
        if getattr(route, "path", None) == "/graphql":
            route.app = view  # type: ignore[attr-defined]
    return app


@contextmanager
def serve(database_url: str, target: str) -> Iterator[tuple[str, int]]:
    """One uvicorn process (as `ketenpoort serve` runs a worker) serving `target`."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-server-header",  # as `ketenpoort serve`
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "KETENPOORT_ENVIRONMENT": "test",
            "KETENPOORT_RATE_LIMIT_PER_SECOND": "0",
            "KETENPOORT_LOG_LEVEL": "WARNING",  # no request line: the cost of the front only
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{target} did not start")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def measure(
    base: str, pid: int, bearer: str, clients: int, seconds: float
) -> dict[str, float]:
    host, port = base.removeprefix("http://").split(":")
    requests = [http_request(host, int(port), bearer, TYPENAME)]
    run = await http_run(
        "typename",
        base,
        requests,
        clients,
        seconds,
        server_pids=lambda: {"gateway": process_tree(pid)},
    )
    if run.errors:
        raise RuntimeError(f"errors: {run.first_error}")
    return {
        "cpu_us": run.server_cpu["gateway"] / run.count * 1e6,
        "rate": run.rate,
        "p50": run.p(50),
        "p99": run.p(99),
        "client": run.client_share,
    }


async def main(
    clients_list: list[int], seconds: float, rounds: int, calls: int
) -> str:
    from db.migrate import upgrade

    bearer = token("operator", "operator")
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    loads: list[float] = [os.getloadavg()[0]]
    direct = await in_process(calls, rounds) if calls else {}
    loads.append(os.getloadavg()[0])
    async with throwaway_database("ketenpoort_front") as url:
        await asyncio.to_thread(upgrade, url)
        # The registry (the operator supplier): the caller is resolved as in production.
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cli", "demo", "--pupils", "10"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
        for round_ in range(rounds):
            order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                with serve(url, VARIANTS[variant]) as (base, pid):
                    for clients in clients_list:
                        loads.append(os.getloadavg()[0])
                        print(f"  round {round_ + 1}, {variant}, {clients} clients …", flush=True)
                        found = await measure(base, pid, bearer, clients, seconds)
                        results.setdefault((variant, clients), []).append(found)
    return report(results, clients_list, seconds, rounds, loads, direct, calls)


def report(
    results: dict[tuple[str, int], list[dict[str, float]]],
    clients_list: list[int],
    seconds: float,
    rounds: int,
    loads: list[float],
    direct: dict[str, list[float]],
    calls: int,
) -> str:
    def med(variant: str, clients: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(variant, clients)])

    lines = [
        "## The HTTP front's fixed cost (issue 14: `{ __typename }`)",
        "",
        f"Command: `.venv/bin/python -m bench.front --clients "
        f"{','.join(map(str, clients_list))} --seconds {seconds:g} --rounds {rounds} "
        f"--calls {calls}` "
        "(one uvicorn worker, uvloop + httptools, PostgreSQL throwaway database, rate limit "
        "off, request log off; `{ __typename }` posted with an operator's bearer token over "
        "keep-alive connections; CPU of the server's process tree from /proc). `own` is "
        "the gateway as it is: /graphql served ahead of Starlette (gateway/front.py) by "
        "gateway/http.py with its pipeline (gateway/pipeline.py), `own, no pipeline` the same "
        "handler running every request through strawberry's `Schema.execute` and the "
        "schema's extensions (the front before the pipeline), `strawberry` strawberry's "
        "ASGI view on the same app, schema and context (the front before gateway/http.py); "
        "`own behind Starlette` the same handler and pipeline reached through Starlette's "
        "middleware (request observer, body limit) and router, the front before "
        "gateway/front.py; alternated in one run, medians of the rounds.",
        "",
        "| front | clients | gateway CPU per request | req/s | p50 | p99 | rounds (CPU µs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for clients in clients_list:
        for variant in VARIANTS:
            rows = results[(variant, clients)]
            lines.append(
                f"| {variant} | {clients} | **{med(variant, clients, 'cpu_us'):.0f} µs** | "
                f"{med(variant, clients, 'rate'):,.0f} | {med(variant, clients, 'p50'):.2f} ms | "
                f"{med(variant, clients, 'p99'):.2f} ms | "
                + ", ".join(f"{r['cpu_us']:.0f}" for r in rows)
                + " |"
            )
    lines.append("")
    for clients in clients_list:
        own, old = med("own", clients, "cpu_us"), med("strawberry", clients, "cpu_us")
        before = med("own, no pipeline", clients, "cpu_us")
        behind = med("own behind Starlette", clients, "cpu_us")
        verdict = "met" if own <= 200 else "missed"
        lines.append(
            f"- {clients} clients: own / own behind Starlette CPU = **{own / behind:.2f}** "
            f"({own:.0f} vs {behind:.0f} µs); "
            f"own / own without pipeline = **{own / before:.2f}** "
            f"({own:.0f} vs {before:.0f} µs); own / strawberry = **{own / old:.2f}** "
            f"({old:.0f} µs); target ≤ 200 µs: **{verdict}**."
        )
    if direct:
        lines += [
            "",
            f"In-process (the same run, before the servers: the ASGI app and the handler "
            f"called directly {calls:,} times a round with `{{ __typename }}`, no socket; "
            "`time.process_time()` of the one process; rounds alternated):",
            "",
            "| what | CPU per request (median) | rounds (µs) |",
            "|---|---|---|",
        ]
        for label, values in direct.items():
            lines.append(
                f"| {label} | **{statistics.median(values):.0f} µs** | "
                + ", ".join(f"{v:.0f}" for v in values)
                + " |"
            )
    lines += [
        "",
        f"Load average (1 min) during the runs: {min(loads):.1f}–{max(loads):.1f} "
        "(a shared machine: other test runs and benchmarks were running; the ratio, "
        "measured alternately in one run, is the figure to trust).",
    ]
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.front", description=__doc__)
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--calls", type=int, default=4000, help="in-process calls a round (0: none)"
    )
    arguments = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    clients = [int(c) for c in arguments.clients.split(",")]
    text = asyncio.run(main(clients, arguments.seconds, arguments.rounds, arguments.calls))
    write_section("front", text)
    print(text)


if __name__ == "__main__":
    cli()
