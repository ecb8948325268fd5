"""The benchmark harness (issue #7): every scenario through real HTTP against uvicorn
on PostgreSQL, a table on stdout, and a section of bench/RESULTS.md with the
machine, the data size and the command.

    .venv/bin/python -m bench --quick    # make bench: a tenth of the data, minutes
    .venv/bin/python -m bench --full     # make bench-full: one large board

Scenarios:

(a) board-level status summary and (b) a 100-row entitlement page, on the generated
    data set (`bench/generate.py`), each next to the same SQL run directly through
    asyncpg in the same run (`bench/scenarios.py`), once with one client (latency)
    and once with 32 (throughput); plus the board's activation curve and its
    failures and stuck deliveries (one client, for information);
(c) licence activation (`bench/activation.py`, the activation issue's benchmark);
(d) delivery submission (`bench/delivery.py`, the delivery issue's benchmark);
(e) subscription fan-out (`bench/fanout.py`, the subscriptions issue's benchmark).

(c), (d) and (e) run on their own throwaway databases as their modules define
them; a module that is not there yet is reported as "not available yet".
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from bench.generate import FULL, QUICK, Generated, Size, generate
from bench.scenarios import Measured, measure, scenarios
from bench.support import ROOT, gateway, machine, throwaway_database, write_section

ENV = {
    # The benchmark measures the gateway, not its per-supplier rate limit.
    "KETENPOORT_RATE_LIMIT_PER_SECOND": "0",
}
POOL = 10  # the gateway's default pool per worker (plus as many overflow)


@dataclass(frozen=True)
class Profile:
    name: str
    size: Size
    seconds: float  # per throughput run
    latency_seconds: float  # per one-client run
    workers: tuple[int, ...]  # uvicorn workers to try for the throughput runs
    delivery: dict[str, int]
    activation: dict[str, float]
    fanout: dict[str, float]


PROFILES = {
    "quick": Profile(
        "quick",
        QUICK,
        seconds=4,
        latency_seconds=3,
        workers=(2,),
        delivery={"pupils": 2000, "products": 100, "rounds": 2},
        activation={"clients": 32, "seconds": 3, "workers": 2, "pupils": 30_000},
        fanout={"sizes": [500], "rounds": 2, "clients": 2, "profile": False},
    ),
    "full": Profile(
        "full",
        FULL,
        seconds=15,
        latency_seconds=8,
        workers=(1, 2),
        delivery={"pupils": 5000, "products": 500, "rounds": 5},
        activation={"clients": 32, "seconds": 20, "workers": 2, "pupils": 60_000},
        fanout={"sizes": [1000, 5000], "rounds": 5, "clients": 2, "profile": False},
    ),
}


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    run: str
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    rate: float | None = None
    raw_p95: float | None = None
    raw_rate: float | None = None
    ratio: str = ""
    target: str = ""
    verdict: str = ""
    note: str = ""


@dataclass
class Report:
    profile: Profile
    command: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)
    data: Generated | None = None


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


# --- (a) and (b) -------------------------------------------------------------------------------


def _rows_for(
    key: str, label: str, latency: Measured, load: dict[int, Measured], report: Report
) -> None:
    target_a = "p95 < 20 ms, ≤ 1.5× raw"
    target_b = "≥ 1,000 req/s"
    g, r = latency.gateway, latency.raw
    ratio = g.p(95) / r.p(95) if r and r.count else None
    row = Row(
        label,
        "1 client",
        g.p(50),
        g.p(95),
        g.p(99),
        g.rate,
        r.p(95) if r else None,
        r.rate if r else None,
        f"{ratio:.1f}× (p95)" if ratio else "",
    )
    if key == "a":
        row.target = target_a
        row.verdict = "met" if g.p(95) < 20 and ratio is not None and ratio <= 1.5 else "missed"
    report.rows.append(row)
    for workers, measured in load.items():
        g, r = measured.gateway, measured.raw
        rate_ratio = r.rate / g.rate if r and g.rate else None
        row = Row(
            label,
            f"32 clients, {workers} worker{'s' if workers > 1 else ''}",
            g.p(50),
            g.p(95),
            g.p(99),
            g.rate,
            r.p(95) if r else None,
            r.rate if r else None,
            f"{g.p(95) / r.p(95):.1f}× (p95), {rate_ratio:.1f}× (req/s)"
            if r and r.count and rate_ratio
            else "",
            note=f"errors {g.errors}; client CPU {g.client_share:.0%} of a core"
            + (f"; first error: {g.first_error[:120]}" if g.first_error else ""),
        )
        if key == "a":
            row.target = target_a
            row.verdict = "met" if g.p(95) < 20 and g.p(95) <= 1.5 * r.p(95) else "missed"  # type: ignore[union-attr]
        else:
            row.target = target_b
            row.verdict = "met" if g.rate >= 1000 else "missed"
        report.rows.append(row)


async def dashboards(url: str, data: Generated, profile: Profile, report: Report) -> None:
    found = scenarios(data)
    for key in ("a", "b"):
        scenario = found[key]
        print(f"  {scenario.name} …", flush=True)
        load: dict[int, Measured] = {}
        latency: Measured | None = None
        for workers in profile.workers:
            with gateway(url, workers=workers, env=ENV) as base:
                if latency is None:
                    latency = await measure(
                        scenario,
                        url,
                        base,
                        clients=1,
                        seconds=profile.latency_seconds,
                        pool_size=POOL,
                    )
                load[workers] = await measure(
                    scenario,
                    url,
                    base,
                    clients=32,
                    seconds=profile.seconds,
                    pool_size=2 * POOL * workers,
                )
        assert latency is not None
        _check_answer(key, latency.answer)
        _rows_for(key, scenario.name, latency, load, report)
        report.notes.append(
            f"{scenario.name}: {latency.statements} SQL statements per request "
            f"(captured from an in-process gateway and replayed as the raw run)."
        )
    with gateway(url, workers=1, env=ENV) as base:
        for key in ("curve", "failures"):
            scenario = found[key]
            print(f"  {scenario.name} …", flush=True)
            measured = await measure(
                scenario, url, base, clients=1, seconds=profile.latency_seconds, pool_size=POOL
            )
            _check_answer(key, measured.answer)
            g, r = measured.gateway, measured.raw
            report.rows.append(
                Row(
                    scenario.name,
                    "1 client",
                    g.p(50),
                    g.p(95),
                    g.p(99),
                    g.rate,
                    r.p(95) if r else None,
                    r.rate if r else None,
                    f"{g.p(95) / r.p(95):.1f}× (p95)" if r and r.count else "",
                    "for information",
                )
            )


def _check_answer(key: str, answer: dict[str, Any]) -> None:
    if answer.get("errors"):
        raise RuntimeError(f"scenario {key} answered with errors: {answer['errors']}")


# --- (c), (d), (e): the other issues' benchmarks --------------------------------------------------


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"bench.{name}":
            return None
        raise


async def _call(function: Any, arguments: dict[str, Any]) -> Any:
    """Call `function` with the arguments it takes (by name) of `arguments`."""
    accepted = inspect.signature(function).parameters
    chosen = {k: v for k, v in arguments.items() if k in accepted}
    missing = [
        n
        for n, p in accepted.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and n not in chosen
    ]
    if missing:
        raise TypeError(f"needs arguments the harness does not know: {missing}")
    result = function(**chosen)
    return await result if inspect.isawaitable(result) else result


def _table_rows(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip().replace("**", "") for cell in line.strip("|").split("|")])
    return rows[1:] if rows else rows


async def activation(profile: Profile, report: Report) -> None:
    module = _module("activation")
    label = "(c) licence activation"
    if module is None or not hasattr(module, "main"):
        report.rows.append(Row(label, "", note="not available yet (bench/activation.py)"))
        return
    print(f"  {label} …", flush=True)
    started = time.perf_counter()
    markdown = await _call(module.main, dict(profile.activation))
    report.sections["activation"] = markdown
    for cells in _table_rows(markdown):
        if len(cells) < 4:
            continue
        name, rate, p50, p99 = cells[:4]
        number = _number(rate)
        p99_ms = _number(p99)
        row = Row(label, name, _number(p50), None, p99_ms, number)
        if name.startswith("gateway"):
            row.target = "≥ 1,000/s, p99 < 50 ms"
            row.verdict = (
                "met"
                if number and number >= 1000 and p99_ms is not None and p99_ms < 50
                else "missed"
            )
        else:
            row.target = "reference"
        report.rows.append(row)
    report.notes.append(
        f"(c) ran `bench.activation.main({_args(profile.activation)})` on its own database "
        f"({time.perf_counter() - started:.0f} s); its full report is below."
    )


async def delivery(profile: Profile, report: Report) -> None:
    module = _module("delivery")
    label = "(d) delivery submission"
    if module is None or not hasattr(module, "main"):
        report.rows.append(Row(label, "", note="not available yet (bench/delivery.py)"))
        return
    print(f"  {label} …", flush=True)
    markdown = await _call(module.main, dict(profile.delivery))
    report.sections["delivery"] = markdown
    for cells in _table_rows(markdown):
        if len(cells) >= 3:
            name, median, throughput = cells[:3]
            row = Row(label, name, _number(median), note=throughput)
            row.target = cells[3] if len(cells) > 3 else ""
            report.rows.append(row)
    ratio = re.search(r"Gateway / raw ratio: ([0-9.]+)×", markdown.replace("**", ""))
    if ratio:
        report.notes.append(f"(d) gateway/raw ratio with `eckIds`: {ratio.group(1)}×.")


async def fanout(profile: Profile, report: Report) -> None:
    module = _module("fanout")
    label = "(e) subscription fan-out"
    if module is None or not hasattr(module, "main"):
        report.rows.append(Row(label, "", note="not available yet (bench/fanout.py)"))
        return
    print(f"  {label} …", flush=True)
    try:
        markdown = await _call(module.main, dict(profile.fanout))
    except TypeError as error:
        report.rows.append(Row(label, "", note=f"not run: bench.fanout.main {error}"))
        return
    report.sections["fanout"] = str(markdown)
    for cells in _table_rows(str(markdown)):
        report.rows.append(Row(label, " / ".join(cells[:1]), note=" | ".join(cells[1:])))


def _number(text: str) -> float | None:
    found = re.search(r"[0-9][0-9,]*(?:\.[0-9]+)?", text or "")
    return float(found.group(0).replace(",", "")) if found else None


def _args(arguments: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in arguments.items()
    )


# --- the report ----------------------------------------------------------------------------------


def table(report: Report) -> str:
    lines = [
        "| scenario | run | p50 ms | p95 ms | p99 ms | req/s | raw p95 ms | raw req/s | "
        "gateway/raw | target | |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report.rows:
        lines.append(
            f"| {row.scenario} | {row.run} | {_ms(row.p50)} | {_ms(row.p95)} | {_ms(row.p99)} | "
            f"{_rate(row.rate)} | {_ms(row.raw_p95)} | {_rate(row.raw_rate)} | {row.ratio} | "
            f"{row.target} | {row.verdict or row.note} |"
        )
    return "\n".join(lines)


def markdown(report: Report, seconds: float) -> str:
    data = report.data
    size = data.size.describe() if data else report.profile.size.describe()
    load = (
        f"generated and loaded in {data.seconds:.0f} s "
        f"({', '.join(f'{k} {v:,}' for k, v in data.rows.items())})"
        if data
        else "not generated"
    )
    notes = "\n".join(f"- {note}" for note in report.notes)
    others = "\n\n".join(
        f"<details><summary>{name} report</summary>\n\n{text.strip()}\n\n</details>"
        for name, text in report.sections.items()
    )
    return f"""## Benchmark harness, {report.profile.name} ({size})

Command: `{report.command}` ({seconds / 60:.1f} minutes in all). Data: {size}, {load}.
Everything through real HTTP against uvicorn (uvloop, httptools) on PostgreSQL 15; load
from keep-alive HTTP/1.1 clients in the harness process (closed loop: each client sends
its next request when the answer is in); raw runs replay the statements the gateway sent
for the same request through asyncpg with the same concurrency.

{table(report)}

{notes}

{others}
"""


async def run(profile: Profile, command: str) -> Report:
    report = Report(profile, command)
    free = shutil.disk_usage(ROOT).free / 2**30
    if profile.size.licences >= 1_000_000 and free < 10:
        raise SystemExit(f"only {free:.0f} GiB free; the full data set needs about 5 GiB")
    print(f"{machine()}\n{profile.size.describe()}", flush=True)
    async with throwaway_database() as url:
        from db.migrate import upgrade

        await asyncio.to_thread(upgrade, url)
        print("generating …", flush=True)
        report.data = await generate(url, profile.size, log=lambda text: print(text, flush=True))
        print(f"  {report.data.seconds:.0f} s", flush=True)
        await dashboards(url, report.data, profile, report)
    for step in (activation, delivery, fanout):
        try:
            await step(profile, report)
        except Exception as error:  # one failing benchmark must not hide the others
            traceback.print_exc()
            report.rows.append(Row(step.__name__, "", note=f"failed: {error!r}"[:200]))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a tenth of the data (make bench)")
    size.add_argument("--full", action="store_true", help="one large board (make bench-full)")
    args = parser.parse_args(argv)
    profile = PROFILES["full" if args.full else "quick"]
    command = f".venv/bin/python -m bench --{profile.name}"
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.perf_counter()
    report = asyncio.run(run(profile, command))
    text = markdown(report, time.perf_counter() - started)
    write_section(f"harness-{profile.name}", text)
    if profile.name == "full":
        # The other issues' benchmarks ran at their own full sizes: keep their sections current.
        for name, section in report.sections.items():
            write_section(name, section)
    print()
    print(table(report))
    print()
    print("\n".join(report.notes))
    print(f"\nWritten to {ROOT / 'bench' / 'RESULTS.md'} (section harness-{profile.name}).")


if __name__ == "__main__":
    main(sys.argv[1:])
