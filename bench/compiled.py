"""Compiled reads (issue 14): the read scenarios through real HTTP against uvicorn
(2 workers) on the quick data set, with compiled reads on (the default on
PostgreSQL) and off (the resolvers), next to the compiled statement replayed
through asyncpg and the resolvers' own statements replayed (the hand-written SQL:
the raw replay of `python -m bench`); CPU per request of the gateway's processes and of PostgreSQL
from /proc, req/s and p50/p99 at 1 and 32 clients; a py-spy profile of one worker
serving the compiled 100-row page.

    .venv/bin/python -m bench.compiled            # writes its section of bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg

from bench.generate import QUICK, generate
from bench.load import Request, Run, cpu_seconds, http_request, http_run, processes, sql_run
from bench.scenarios import BOARD_SUMMARY, ENTITLEMENT_PAGE, PAGE_SCHOOLS, _uvicorn_pids
from bench.support import (
    gateway,
    machine,
    raw_url,
    throwaway_database,
    token,
    worker_pids,
    write_section,
)

ONE = """query One($id: ID!) {
  entitlement(id: $id) {
    id status variant quantity licencesUsed licencesAvailable startDate activationUntilDate
    school { rioId name }
    product { productId name publisher { code } }
    recipients { role state supplier { code } }
  }
}"""

TYPENAME = "{ __typename }"

ENV = {"KETENPOORT_RATE_LIMIT_PER_SECOND": "0"}
OFF = {**ENV, "KETENPOORT_COMPILED_READS": "false"}


@dataclass
class Scenario:
    key: str
    name: str
    bodies: list[dict[str, Any]]
    bearer: str


async def scenarios(url: str, data: Any) -> list[Scenario]:
    bearer = token(data.dashboard, "dashboard")
    connection = await asyncpg.connect(raw_url(url))
    try:
        ids = await connection.fetch(
            """SELECT e.id FROM entitlement AS e
               JOIN entitlement_recipient AS r ON r.entitlement_id = e.id
               JOIN supplier AS s ON s.id = r.supplier_id
               JOIN organisation AS o ON o.id = e.school_id
               WHERE s.code = $1 AND r.role = 'DASHBOARD' AND o.rio_id = ANY($2::text[])
               ORDER BY e.id LIMIT 100""",
            data.dashboard,
            list(data.consenting_rios),
        )
    finally:
        await connection.close()
    pages = [
        {"query": ENTITLEMENT_PAGE, "variables": {"school": {"value": rio}}}
        for rio in data.consenting_rios[:PAGE_SCHOOLS]
    ]
    return [
        Scenario("b", "(b) 100-row entitlement page", pages, bearer),
        Scenario(
            "one",
            "one entitlement by id, nested",
            [{"query": ONE, "variables": {"id": str(row["id"])}} for row in ids],
            bearer,
        ),
        Scenario(
            "a",
            "(a) board status summary",
            [{"query": BOARD_SUMMARY, "variables": {"board": {"value": data.board_rio}}}],
            bearer,
        ),
        Scenario("typename", "`{ __typename }`", [{"query": TYPENAME}], bearer),
    ]


async def compiled_statements(url: str, scenario: Scenario) -> list[tuple[str, list[Any]]]:
    """The statement the compiled path sends for each body (none when it falls back)."""
    from graphql import parse

    from compiler import Fallback, ReadCompiler
    from domain.roles import Role
    from gateway.limits import gateway_schema
    from resolvers.clock import today
    from settings import Settings

    settings = Settings(database_url=url)  # type: ignore[call-arg]
    compiler = ReadCompiler(gateway_schema(settings), settings)
    connection = await asyncpg.connect(raw_url(url))
    try:
        supplier_id = await connection.fetchval(
            "SELECT id FROM supplier WHERE code = 'bench-dashboard'"
        )
    finally:
        await connection.close()
    caller = SimpleNamespace(
        supplier_id=supplier_id,
        supplier_code="bench-dashboard",
        roles=frozenset({Role.DASHBOARD}),
        school=None,
        school_id=None,
        has=lambda *roles: Role.DASHBOARD in roles,
    )
    found = []
    for body in scenario.bodies:
        plan = compiler.plan(parse(body["query"]), None, caller, body.get("variables") or {})
        if isinstance(plan, Fallback):
            continue
        statement = plan.statement(body.get("variables") or {}, caller, today())
        if isinstance(statement, Fallback) or statement[0] is None:
            continue
        found.append((statement[0], statement[1]))
    return found


async def hand_statements(url: str, scenario: Scenario) -> list[Request]:
    """The statements the resolvers send for each body, per transaction, captured
    in-process on the bench database (the second of two runs, so that the supplier
    cache is warm as under load; the read-audit rows, which the gateway writes in
    background batches, are left out)."""
    from sqlalchemy import event

    from db.engine import create_engine, create_sessionmaker
    from gateway.caches import SupplierCache
    from gateway.limits import gateway_schema
    from gateway.tokens import TokenVerifier
    from resolvers.context import Context
    from settings import Environment, Settings

    settings = Settings(environment=Environment.TEST, database_url=url)  # type: ignore[call-arg]
    schema = gateway_schema(settings)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    verifier = TokenVerifier(settings)
    suppliers = SupplierCache(3600)
    transactions: Request = []

    def begin(_connection: Any) -> None:
        transactions.append([])

    def execute(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not transactions:
            transactions.append([])
        transactions[-1].append((statement, tuple(parameters or ())))

    event.listen(engine.sync_engine, "begin", begin)
    event.listen(engine.sync_engine, "before_cursor_execute", execute)
    found = []
    try:
        for body in scenario.bodies:
            for _ in range(2):
                transactions.clear()
                context = Context(settings, sessions)
                context.supplier_cache = suppliers
                context.caller = verifier.verify(f"Bearer {scenario.bearer}")
                result = await schema.execute(
                    body["query"], variable_values=body.get("variables"), context_value=context
                )
                assert not result.errors, result.errors
                context.reads.clear()  # the gateway's audit buffer writes them in batches
                await context.finish()
            found.append([list(t) for t in transactions if t])
    finally:
        await engine.dispose()
    return found


async def _raw_client(
    pool: asyncpg.Pool, statements: list[tuple[str, list[Any]]], offset: int, stop: float
) -> list[float]:
    latencies, n = [], offset
    while time.perf_counter() < stop:
        sql, args = statements[n % len(statements)]
        n += 1
        started = time.perf_counter()
        async with pool.acquire() as connection:
            await connection.fetchrow(sql, *args)
        latencies.append(time.perf_counter() - started)
    return latencies


def backends(url: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's database (their process titles
    name it): other databases on the shared server are left out of its CPU."""
    database = url.rsplit("/", 1)[1].encode()
    found = []
    for pid in processes("postgres"):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if database in title:
            found.append(pid)
    return found


async def raw_run(
    name: str, url: str, statements: list[tuple[str, list[Any]]], clients: int, seconds: float
) -> Run:
    """The compiled statements through asyncpg, autocommit as the gateway sends them."""
    pool = await asyncpg.create_pool(raw_url(url), min_size=clients, max_size=clients)
    try:
        warm = time.perf_counter() + 1.0
        await asyncio.gather(*[_raw_client(pool, statements, i, warm) for i in range(clients)])
        pids = backends(url)
        before = cpu_seconds(pids)
        cpu = time.process_time()
        started = time.perf_counter()
        results = await asyncio.gather(
            *[_raw_client(pool, statements, i * 7, started + seconds) for i in range(clients)]
        )
        elapsed = time.perf_counter() - started
        server = {"postgres": cpu_seconds(pids) - before}
        client = time.process_time() - cpu
    finally:
        await pool.close()
    return Run(name, [t for r in results for t in r], elapsed, 0, client, server)


@dataclass
class Line:
    scenario: str
    path: str
    clients: int
    run: Run
    idle: float = 0.0  # the gateway's CPU seconds per second with no request

    def cpu(self, kind: str) -> float | None:
        """CPU milliseconds per request; the gateway's net of what it spends idle
        (the live broker's poll, the audit and other background flushes)."""
        seconds = self.run.server_cpu.get(kind)
        if seconds is None or not self.run.count:
            return None
        if kind == "gateway":
            seconds = max(0.0, seconds - self.idle * self.run.seconds)
        return seconds / self.run.count * 1000


async def idle_cpu(base: str, seconds: float = 3.0) -> float:
    """The gateway's CPU seconds per second while it serves nothing."""
    pids = _uvicorn_pids(base.rsplit(":", 1)[1])
    await asyncio.sleep(1.0)
    before = cpu_seconds(pids)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pids) - before) / seconds


async def through(
    url: str, base: str, scenario: Scenario, clients: int, seconds: float, label: str
) -> Run:
    host, port = base.removeprefix("http://").split(":")
    requests = [http_request(host, int(port), scenario.bearer, body) for body in scenario.bodies]

    def pids() -> dict[str, list[int]]:
        return {"gateway": _uvicorn_pids(port), "postgres": backends(url)}

    return await http_run(
        f"{scenario.name}, {label}", base, requests, clients, seconds, server_pids=pids
    )


def profile(base: str, scenario: Scenario, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    port = base.rsplit(":", 1)[1]
    workers = worker_pids(_uvicorn_pids(port)[0])
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(workers[-1]),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


_FRAME_FILE = re.compile(r"\(([^():]+):\d+\)$")
_OURS = {"app", "settings", "gateway", "compiler", "live", "schema", "resolvers", "db", "domain"}
_LIBRARIES = {"ssl", "json", "socket", "selectors", "asyncio"}


def profile_summary(path: Path) -> str:
    """A worker's CPU by the package of the innermost frame (idle samples left out)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return "(no py-spy profile)"
    shares: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or not stack or frames[-1].startswith(("Runner.run (", "run (")):
            continue
        label = "other (asyncio, stdlib)"
        for frame in reversed(frames):
            found = _FRAME_FILE.search(frame)
            if not found:
                continue
            path = found.group(1)
            if path.startswith("/") and "site-packages/" not in path:
                label = "Python's standard library: " + path.rsplit("/", 1)[1].removesuffix(".py")
                break
            path = path.split("site-packages/")[-1]
            top = path.split("/", 1)[0].removesuffix(".py")
            if top in _OURS:
                label = f"gateway code ({top})"
                break
            if "/" in path or top in _LIBRARIES:
                label = top
                break
        shares[label] += int(count)
    total = sum(shares.values())
    if not total:
        return "(empty py-spy profile)"
    return "| innermost frame's package | share of a worker's CPU |\n|---|---|\n" + "\n".join(
        f"| {name} | {count / total * 100:.0f}% |" for name, count in shares.most_common(12)
    )


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def verdicts(lines: list[Line]) -> list[str]:
    """Each target of issue 14 against this run's figures."""

    def find(scenario: str, path: str, clients: int) -> Line | None:
        return next(
            (
                line
                for line in lines
                if line.scenario.startswith(scenario)
                and line.path == path
                and line.clients == clients
            ),
            None,
        )

    found = []

    def cpu_target(scenario: str, label: str, limit: float) -> None:
        for clients in (1, 32):
            line = find(scenario, "compiled", clients)
            cpu = line.cpu("gateway") if line else None
            if cpu is None:
                continue
            verdict = "met" if cpu <= limit else "missed"
            found.append(
                f"{label}, {clients} client(s): gateway CPU {cpu:.2f} ms/request "
                f"(target ≤ {limit} ms): **{verdict}**"
            )

    cpu_target("(b)", "(b) 100-row page", 2.0)
    page = find("(b)", "compiled", 32)
    if page is not None:
        p99 = page.run.p(99)
        verdict = "met" if p99 <= 100 else "missed"
        found.append(f"(b) p99 at 32 clients {p99:.0f} ms (target ≤ 100 ms): **{verdict}**")
    cpu_target("one", "one entitlement by id, nested", 0.4)
    for clients in (1, 32):
        gateway = find("(a)", "compiled", clients)
        hand, raw = find("(a)", "hand", clients), find("(a)", "raw", clients)
        if gateway and hand and hand.run.count:
            ratio = gateway.run.p(95) / hand.run.p(95)
            verdict = "met" if ratio <= 1.5 else "missed"
            also = (
                f"; {gateway.run.p(95) / raw.run.p(95):.1f}× the compiled statement's own "
                f"replay ({raw.run.p(95):.1f} ms)"
                if raw and raw.run.count
                else ""
            )
            found.append(
                f"(a) board summary, {clients} client(s): p95 {gateway.run.p(95):.1f} ms, "
                f"{ratio:.1f}× the raw SQL replay of the resolvers' statements "
                f"({hand.run.p(95):.1f} ms; target ≤ 1.5×): **{verdict}**{also}"
            )
    cpu_target("`{ __typename }`", "`{ __typename }`", 0.2)
    return found


def report(
    lines: list[Line],
    statements: dict[str, int],
    spy: str,
    command: str,
    idles: dict[str, float],
    spied: str = "the compiled 100-row page",
) -> str:
    rows = [
        "| scenario | path | clients | req/s | p50 ms | p95 ms | p99 ms | gateway CPU ms/req "
        "| PostgreSQL CPU ms/req | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for line in lines:
        run = line.run
        rows.append(
            f"| {line.scenario} | {line.path} | {line.clients} | {run.rate:,.0f} | "
            f"{run.p(50):.1f} | {run.p(95):.1f} | {run.p(99):.1f} | {_ms(line.cpu('gateway'))} | "
            f"{_ms(line.cpu('postgres'))} | {run.errors} |"
        )
    targets = "\n".join(f"- {verdict}" for verdict in verdicts(lines))
    counts = ", ".join(f"{k}: {v}" for k, v in statements.items())
    idle = ", ".join(f"{k} {v * 1000:.0f} ms/s" for k, v in idles.items())
    return f"""## Compiled reads (issue 14)

Command: `{command}` on {machine()}. Data: the quick data set (bench/generate.py), uvicorn
with 2 workers, rate limit off. "compiled" is the default (compiled reads on PostgreSQL),
"resolvers" the same gateway with `KETENPOORT_COMPILED_READS=false`, "raw" the compiled
statement sent straight through asyncpg (autocommit, as the gateway sends it) at the same
concurrency, "hand" the statements the resolvers send for the same request (their
hand-written SQL, each transaction with its BEGIN/COMMIT, as `python -m bench` replays
them: the raw SQL replay of issue 14's targets), on a pool of one connection per client.
CPU per request is measured from /proc over each run: the gateway's processes
(master and workers), net of their idle CPU measured before the runs ({idle}: the live
broker's poll and the background flushes), and
the PostgreSQL backends of the benchmark's database apart (the server is shared with other
databases; their backends are left out). Compiled statements per request
(raw replay): {counts}.

{chr(10).join(rows)}

Targets (issue 14), from this run:
{targets}

Profile of one worker serving {spied} at 32 clients (py-spy, 250 Hz):

{spy}

_Measured {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}._
"""


PATHS = ("compiled", "resolvers", "hand", "raw")


async def main(
    seconds: float = 4.0,
    latency_seconds: float = 3.0,
    keys: set[str] | None = None,
    paths: tuple[str, ...] = PATHS,
    spied: str = "b",
    command: str = "python -m bench.compiled",
) -> str:
    """Every scenario on every path, or the `keys` asked for on the `paths` asked for;
    py-spy on a worker serving `spied` compiled at 32 clients."""
    lines: list[Line] = []
    statements: dict[str, int] = {}
    idles: dict[str, float] = {}
    spy_path = Path(tempfile.mkdtemp()) / "compiled.txt"
    async with throwaway_database() as url:
        from db.migrate import upgrade

        await asyncio.to_thread(upgrade, url)
        data = await generate(url, QUICK, log=lambda text: print(text, flush=True))
        found = [s for s in await scenarios(url, data) if keys is None or s.key in keys]
        for label, env in (("compiled", ENV), ("resolvers", OFF)):
            if label not in paths:
                continue
            with gateway(url, workers=2, env=env) as base:
                idle = await idle_cpu(base)
                idles[label] = idle
                for scenario in found:
                    for clients, length in ((1, latency_seconds), (32, seconds)):
                        print(f"  {scenario.name}, {label}, {clients} clients …", flush=True)
                        run = await through(url, base, scenario, clients, length, label)
                        lines.append(Line(scenario.name, label, clients, run, idle))
                        if label == "compiled" and scenario.key == spied and clients == 32:
                            # The profile in a run of its own: py-spy takes CPU from the
                            # 2 cores, which would show in the measured run's latency.
                            spy = profile(base, scenario, length, spy_path)
                            await through(url, base, scenario, clients, length, label)
                            spy.wait(timeout=60)
        for scenario in found:
            if scenario.key != "typename" and "hand" in paths:
                hand = await hand_statements(url, scenario)
                statements[f"{scenario.key} (hand)"] = len(hand[0][0]) if hand[0] else 0
                for clients, length in ((1, latency_seconds), (32, seconds)):
                    run = await sql_run(
                        f"{scenario.name}, hand",
                        raw_url(url),
                        hand,
                        clients,
                        length,
                        clients,
                        server_pids=lambda: {"postgres": backends(url)},
                    )
                    lines.append(Line(scenario.name, "hand", clients, run))
            if "raw" not in paths:
                continue
            compiled = await compiled_statements(url, scenario)
            statements[scenario.key] = len(compiled) and 1
            if not compiled:
                continue
            for clients, length in ((1, latency_seconds), (32, seconds)):
                run = await raw_run(f"{scenario.name}, raw", url, compiled, clients, length)
                lines.append(Line(scenario.name, "raw", clients, run))
    order = {s.name: i for i, s in enumerate(found)}
    lines.sort(key=lambda line: (order[line.scenario], line.clients, line.path))
    spy = profile_summary(spy_path)
    name = next((f"the compiled {s.name}" for s in found if s.key == spied), "(none)")
    return report(lines, statements, spy, command, idles, name)


# --- statements: PostgreSQL's CPU per request, compiled against hand-written -----------------


def _backend_cpu(pid: int) -> float:
    """CPU seconds of one PostgreSQL backend (utime + stime from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _sequential(
    connection: asyncpg.Connection, pid: int, request: Request, repeat: int
) -> tuple[float, float]:
    """PostgreSQL's and this process's CPU milliseconds per request, the request's
    statements sent `repeat` times one after the other on one connection (prepared
    once, as asyncpg does; after a warm-up past PostgreSQL's five custom plans)."""

    async def once() -> None:
        for transaction in request:
            if len(request) > 1 or len(transaction) > 1:
                async with connection.transaction():
                    for sql, args in transaction:
                        await connection.fetch(sql, *args)
            else:
                for sql, args in transaction:
                    await connection.fetch(sql, *args)

    for _ in range(20):
        await once()
    before, own = _backend_cpu(pid), time.process_time()
    for _ in range(repeat):
        await once()
    return (
        (_backend_cpu(pid) - before) / repeat * 1000,
        (time.process_time() - own) / repeat * 1000,
    )


async def audit_flush_cpu(url: str, requests: int = 250, rounds: int = 5) -> float:
    """The gateway's CPU milliseconds per request to write one page's read-audit row
    through the audit buffer (gateway/caches.py), flushed `requests` at a time."""
    from db.engine import create_engine, create_sessionmaker
    from domain.roles import Actor
    from gateway.caches import AuditBuffer

    engine = create_engine(url)
    buffer = AuditBuffer(create_sessionmaker(engine), 3600)
    spent = 0.0
    try:
        for round_ in range(rounds + 1):
            for n in range(requests):
                object_id = None if n % 3 else str(n)  # pages and lookups by id, mixed
                buffer.add(
                    Actor(None, "dashboard"), [(None, "read.bench", "entitlement", object_id)]
                )
            started = time.process_time()
            await buffer.flush()
            if round_:  # the first round warms SQLAlchemy's caches
                spent += time.process_time() - started
        connection = await asyncpg.connect(raw_url(url))
        await connection.execute("DELETE FROM audit_log WHERE action = 'read.bench'")
        await connection.close()
    finally:
        await engine.dispose()
    return spent / (requests * rounds) * 1000


async def statements_main(repeat: int = 300) -> str:
    """PostgreSQL's CPU per request for each scenario's compiled statement and for the
    resolvers' statements, sequential on one connection, and the audit write."""
    rows = [
        "| scenario | statements | bytes | PostgreSQL CPU ms/req | client (asyncpg) CPU ms/req |",
        "|---|---|---|---|---|",
    ]
    async with throwaway_database() as url:
        from db.migrate import upgrade

        await asyncio.to_thread(upgrade, url)
        data = await generate(url, QUICK, log=lambda text: None)
        found = await scenarios(url, data)
        load = os.getloadavg()
        connection = await asyncpg.connect(raw_url(url))
        try:
            pid = await connection.fetchval("SELECT pg_backend_pid()")
            for scenario in found:
                if scenario.key == "typename":
                    continue
                compiled = await compiled_statements(url, scenario)
                hand = await hand_statements(url, scenario)
                for label, request in (
                    ("compiled", [[compiled[0]]]),
                    ("resolvers' (hand-written)", hand[0]),
                ):
                    server, client = await _sequential(connection, pid, request, repeat)
                    count = sum(len(t) for t in request)
                    size = sum(len(sql.encode()) for t in request for sql, _ in t)
                    rows.append(
                        f"| {scenario.name}, {label} | {count} | {size:,} | {server:.2f} | "
                        f"{client:.2f} |"
                    )
        finally:
            await connection.close()
        audit = await audit_flush_cpu(url)
    return f"""### PostgreSQL's work per request, compiled and hand-written

Command: `.venv/bin/python -m bench.compiled --statements` (load average {load[0]:.1f},
{load[1]:.1f}, {load[2]:.1f} at the start: a shared machine). Each request's statements
sent {repeat} times one after the other on one asyncpg connection (prepared once, after
a warm-up), on the quick data set as the dashboard provider; CPU from /proc of that
PostgreSQL backend and of this process. "resolvers'" are the statements the resolver
path sends for the same request (transactions of several statements with BEGIN/COMMIT).

{chr(10).join(rows)}

Read audit, as the gateway writes it (gateway/caches.py `AuditBuffer`, 250 requests a
flush, pages and lookups by id mixed): {audit:.3f} ms of the gateway's CPU per request.
"""


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compiled", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--statements",
        action="store_true",
        help="only PostgreSQL's CPU per request, compiled against hand-written SQL",
    )
    parser.add_argument(
        "--scenarios",
        help="only these scenarios (comma-separated keys: b, one, a, typename); the run "
        "writes its own section (compiled-selected) instead of the full one",
    )
    parser.add_argument(
        "--paths", default=",".join(PATHS), help="of compiled, resolvers, hand, raw"
    )
    parser.add_argument(
        "--profile", default="b", help="the scenario py-spy records, compiled at 32 clients"
    )
    arguments = parser.parse_args(argv)
    if arguments.statements:
        text = asyncio.run(statements_main())
        write_section("compiled-statements", text)
        print(text)
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    keys = set(arguments.scenarios.split(",")) if arguments.scenarios else None
    paths = tuple(p for p in arguments.paths.split(",") if p)
    selected = keys is not None or set(paths) != set(PATHS)
    command = "python -m bench.compiled " + " ".join(argv or sys.argv[1:])
    text = asyncio.run(
        main(arguments.seconds, min(3.0, arguments.seconds), keys, paths, arguments.profile,
             command.strip())
    )
    if selected:
        text = text.replace("## Compiled reads (issue 14)", "## Compiled reads, selected scenarios")
    write_section("compiled-selected" if selected else "compiled", text)
    print(text)


if __name__ == "__main__":
    cli(sys.argv[1:])
