"""What the request observer (request id, request line, metrics, no tracing) adds
to a request: `{ __typename }` through the whole ASGI app in-process (httpx's ASGI
transport, SQLite, no network), CPU time per request from the process clock, with
the observer as shipped and with it bypassed, in one run, alternating rounds.

    .venv/bin/python -m bench.ops_overhead [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from typing import Any

import httpx


async def measure(app: Any, requests: int, headers: dict[str, str]) -> float:
    body = {"query": "{ __typename }"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:
        for _ in range(200):  # warm up
            await client.post("/graphql", json=body, headers=headers)
        start = time.process_time()
        for _ in range(requests):
            response = await client.post("/graphql", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return (time.process_time() - start) / requests


async def isolated(calls: int, rounds: int) -> None:
    """The observer alone around an ASGI app that answers at once and notes what the
    GraphQL layer would (operation, outcome, caller): its own CPU per request."""
    from gateway import logging as request_logging
    from gateway.observe import RequestObserver

    class Caller:
        supplier_code = "demo-shop"
        roles = frozenset({"seller"})

    class Noted:
        observed = ("Products", "ok", None)
        caller = Caller()
        principal = None

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["gateway_context"] = Noted()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    def scope() -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": "/graphql",
                "headers": [(b"content-type", b"application/json")]}

    observed = RequestObserver(inner)
    variants = [
        ("text", "INFO", "text request line"),
        ("json", "INFO", "json request line"),
        ("text", "WARNING", "request line off (level WARNING): metrics + request id"),
    ]
    for log_format, level, label in variants:
        request_logging._configured = None
        request_logging.configure(log_format, level)
        for handler in logging.getLogger().handlers:
            if handler.get_name() == "ketenpoort":
                handler.setStream(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230
        added = []
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(calls):
                await inner(scope(), receive, send)
            bare = time.process_time() - start
            start = time.process_time()
            for _ in range(calls):
                await observed(scope(), receive, send)
            added.append((time.process_time() - start - bare) / calls)
        print(f"observer alone, {label}, {calls} calls x {rounds} rounds: "
              f"+{statistics.median(added) * 1e6:.1f} us CPU per request "
              f"(rounds: {', '.join(f'{a * 1e6:.1f}' for a in added)})")


async def main(requests: int, rounds: int) -> None:
    from app import create_app
    from db.engine import create_engine, create_sessionmaker
    from db.migrate import upgrade
    from gateway import observe
    from gateway.tokens import mint_token
    from settings import Environment, Settings

    folder = tempfile.mkdtemp(prefix="ketenpoort-bench-")
    url = f"sqlite+aiosqlite:///{folder}/bench.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    results: dict[str, list[float]] = {}
    shipped = observe.RequestObserver.__call__

    async def bypass(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    sink = logging.FileHandler(os.devnull)
    for variant in ("bypassed", "text", "json"):
        results[variant] = []
    for _ in range(rounds):
        for variant in ("bypassed", "text", "json"):
            settings = Settings(environment=Environment.TEST, database_url=url,
                                log_format="json" if variant == "json" else "text",
                                rate_limit_per_second=0)
            app = create_app(settings, sessionmaker=create_sessionmaker(engine))
            root = logging.getLogger()
            for handler in root.handlers:  # the request line is formatted, written to /dev/null
                if handler.get_name() == "ketenpoort":
                    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230
            observe.RequestObserver.__call__ = bypass if variant == "bypassed" else shipped
            token = mint_token(settings, "operator", ["operator"])
            headers = {"Authorization": f"Bearer {token}"}
            results[variant].append(await measure(app, requests, headers))
    observe.RequestObserver.__call__ = shipped
    sink.close()
    await engine.dispose()
    base = statistics.median(results["bypassed"])
    print(f"{requests} requests x {rounds} rounds, CPU per request (median of rounds):")
    for variant, values in results.items():
        median = statistics.median(values)
        print(f"  {variant:9s} {median * 1e6:7.1f} us  (+{(median - base) * 1e6:5.1f} us, "
              f"x{median / base:.3f})  rounds: {', '.join(f'{v * 1e6:.0f}' for v in values)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--isolated", type=int, default=20000,
                        help="calls per round of the observer alone (0: skip)")
    arguments = parser.parse_args()
    if arguments.isolated:
        asyncio.run(isolated(arguments.isolated, arguments.rounds))
    if arguments.requests:
        asyncio.run(main(arguments.requests, arguments.rounds))
