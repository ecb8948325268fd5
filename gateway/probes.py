"""Probes for load balancers and orchestrators.

* `/livez`: the process answers (no database): restart it when this fails.
* `/readyz`: send it traffic only when this says 200: the database answers, its
  schema is at the migrations' head (a gateway started before `ketenpoort migrate`
  finished is not ready), the live broker runs and, on PostgreSQL, listens, and
  the broker has completed a read of the event table within
  `ready_broker_stall_seconds`. While the gateway drains after SIGTERM it answers
  503, so a proxy stops sending new work before the process goes.
* `/healthz`: the same as `/readyz` (kept for existing checks).

Each answer is JSON with one entry per check; a failed check says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db.migrate import ROOT

log = logging.getLogger("ketenpoort.probes")


def migrations_head() -> str:
    """The newest revision in migrations/ (read once, at start)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert head is not None
    return head


class Probes:
    def __init__(self, settings: Any, sessionmaker: Callable[[], Any], broker: Callable[[], Any]):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.head = migrations_head()
        self.draining = False
        self._reads = -1
        self._reads_changed = time.monotonic()

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(5), self.sessionmaker() as session:
                revision = (
                    await session.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar()
            checks["database"] = "up"
            checks["migrations"] = (
                "at head" if revision == self.head else f"at {revision}, head is {self.head}"
            )
        except Exception as exc:  # the probe must answer, not crash
            log.warning("readiness: database unavailable: %s", exc)
            checks["database"] = f"down: {type(exc).__name__}"
        checks["broker"] = self._broker_state()
        if self.draining:
            checks["shutdown"] = "draining"
        ready = (
            checks.get("database") == "up"
            and checks.get("migrations") == "at head"
            and checks["broker"] == "listening"
            and not self.draining
        )
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", **checks},
            status_code=200 if ready else 503,
        )

    def _broker_state(self) -> str:
        broker = self.broker()
        if broker is None or not broker.running:
            return "not running"
        if broker.is_postgres and broker._listen_connection is None:
            return "not listening"
        now = time.monotonic()
        if broker.stats.reads != self._reads:
            self._reads, self._reads_changed = broker.stats.reads, now
        stalled = now - self._reads_changed
        if stalled > self.settings.ready_broker_stall_seconds:
            return f"stalled: no read of the event table for {stalled:.0f} s"
        return "listening"

    def routes(self) -> list[Route]:
        return [
            Route("/livez", self.livez),
            Route("/readyz", self.readyz),
            Route("/healthz", self.readyz),
        ]
