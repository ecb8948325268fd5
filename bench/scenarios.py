"""The dashboard scenarios of the benchmark harness, through real HTTP against
uvicorn on the generated data set, each next to the same SQL run directly:

(a) board-level status summary: entitlements per status and licences activated
    against bought for the whole board, as the dashboard provider (consent decided
    per school, the schools left out listed);
(b) a 100-row entitlement page of one school with nested school, product and
    licence counts (`entitlements(first: 100)`), as the dashboard provider, a
    different consenting school per request.

For both, the statements the gateway sends for a request are captured from an
in-process gateway (`bench.load.capture`) and replayed through asyncpg with the
same concurrency on a pool as large as the gateway's: the gateway/raw ratio is
the cost of HTTP, GraphQL and Python on top of exactly the same database work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.generate import Generated
from bench.load import Run, capture, cpu_seconds, http_request, http_run, processes, sql_run
from bench.support import raw_url, token

BOARD_SUMMARY = """query BoardSummary($board: OrganisationIdentifierInput!) {
  dashboard(board: $board) {
    excludedSchools { school { rioId } missing }
    entitlementsByStatus { status entitlements openEntitlements quantity }
    licenceTotals { quantityBought licencesActivated licencesActivatedOpen activationRate }
  }
}"""

ENTITLEMENT_PAGE = """query EntitlementPage($school: OrganisationIdentifierInput!) {
  entitlements(first: 100, filter: {school: $school}) {
    nodes {
      id status variant quantity licencesUsed licencesAvailable startDate activationUntilDate
      school { rioId name }
      product { productId name }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

ACTIVATION_CURVE = """query Curve($board: OrganisationIdentifierInput!) {
  dashboard(board: $board) { activationsPerDay { day activations cumulative activationRate } }
}"""

FAILURES = """query Failures($board: OrganisationIdentifierInput!) {
  dashboard(board: $board) {
    failures { code meaning recipientRole recipient { code } entitlements }
    stuckDeliveries(pendingLongerThanMinutes: 1440, first: 20) {
      total deliveries { deliveryId entitlements pendingSince }
    }
  }
}"""

#: Schools the entitlement page rotates through.
PAGE_SCHOOLS = 10


@dataclass
class Scenario:
    name: str
    bodies: list[dict[str, Any]]
    bearer: str


def scenarios(data: Generated) -> dict[str, Scenario]:
    dashboard = token(data.dashboard, "dashboard")
    board = {"board": {"value": data.board_rio}}
    pages = [
        {"query": ENTITLEMENT_PAGE, "variables": {"school": {"value": rio}}}
        for rio in data.consenting_rios[:PAGE_SCHOOLS]
    ]
    return {
        "a": Scenario(
            "(a) board status summary", [{"query": BOARD_SUMMARY, "variables": board}], dashboard
        ),
        "b": Scenario("(b) 100-row entitlement page", pages, dashboard),
        "curve": Scenario(
            "board activation curve (30 days)",
            [{"query": ACTIVATION_CURVE, "variables": board}],
            dashboard,
        ),
        "failures": Scenario(
            "board failures and stuck deliveries",
            [{"query": FAILURES, "variables": board}],
            dashboard,
        ),
    }


def _uvicorn_pids(port: str) -> list[int]:
    from bench.load import process_tree

    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            line = b" ".join(argv)
            if (b"uvicorn" in line or b"serve" in argv) and port.encode() in argv:
                return process_tree(int(entry.name))
    return []


@dataclass
class Measured:
    gateway: Run
    raw: Run | None
    answer: dict[str, Any]
    statements: int

    @property
    def ratio_p95(self) -> float | None:
        return self.gateway.p(95) / self.raw.p(95) if self.raw and self.raw.count else None

    @property
    def ratio_rate(self) -> float | None:
        return self.raw.rate / self.gateway.rate if self.raw and self.gateway.rate else None


async def measure(
    scenario: Scenario,
    url: str,
    base: str,
    *,
    clients: int,
    seconds: float,
    pool_size: int,
    with_raw: bool = True,
) -> Measured:
    """The scenario through the gateway at `base`, then (with_raw) the same SQL."""
    host, port = base.removeprefix("http://").split(":")
    requests = [http_request(host, int(port), scenario.bearer, body) for body in scenario.bodies]

    def pids() -> dict[str, list[int]]:
        return {"gateway": _uvicorn_pids(port), "postgres": processes("postgres")}

    gateway = await http_run(
        f"{scenario.name}, gateway", base, requests, clients, seconds, server_pids=pids
    )
    captured = [await capture(url, scenario.bearer, body) for body in scenario.bodies]
    answer = captured[0][1]
    statements = sum(len(t) for t in captured[0][0])
    raw = None
    if with_raw:
        raw = await sql_run(
            f"{scenario.name}, raw SQL",
            raw_url(url),
            [c[0] for c in captured],
            clients,
            seconds,
            pool_size,
            server_pids=lambda: {"postgres": processes("postgres")},
        )
    return Measured(gateway, raw, answer, statements)


__all__ = ["Measured", "Scenario", "cpu_seconds", "measure", "scenarios"]
