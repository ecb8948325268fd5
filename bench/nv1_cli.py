"""Benchmark of ``ketenpoort eckid hash`` (rule NV-1) on a generated file of pgns.

NV-1's scrypt (N=131072, r=8, p=4) is deliberately slow: about two seconds per
pgn on one core. This script measures what a school's administration system or
a supplier would see: it writes ``--lines`` test BSNs to a temporary file (the
~9,000 numbers of ``domain.sandbox.test_pgns``' 9999 test range, repeated as
needed; no real BSNs), runs the real CLI as a subprocess with its progress bar
on, and prints wall time, throughput, CPU seconds per hash (which other load on
the machine changes far less than wall time) and extrapolations to 100,000 lines.

    .venv/bin/python bench/nv1_cli.py --lines 2000 --workers 2
    .venv/bin/python bench/nv1_cli.py --lines 100000 --workers 2 --dry-run
    .venv/bin/python bench/nv1_cli.py --lines 100000 --workers 2 --stop-after 300

``--dry-run`` passes the CLI's own ``--dry-run``: every line is read, validated
and counted through the progress bar, but nothing is hashed. It shows that input
streams and the bar works at 100,000 lines without spending two days of CPU.
``--stop-after`` really hashes the 100,000-line file and interrupts it like
Ctrl-C: hashes must appear from the first seconds and the CLI's memory must stay
flat (the input is never submitted up front), and the exit must be prompt.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

from domain.sandbox import test_pgns

SALT = "rktYml0MIp9TC9u6Ny6uqw=="  # Kennisnet's published test salt, not a real one.


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _run(command: list[str], stop_after: float | None) -> tuple[int, int]:
    """Run the CLI; interrupt it like Ctrl-C after ``stop_after`` seconds.

    Returns (exit code, peak resident memory of the CLI's main process in KiB).
    """
    process = subprocess.Popen(
        command,
        env={**os.environ, "KETENPOORT_NV1_SALT": SALT},
        start_new_session=True,
        # A terminal's Ctrl-C reaches the whole process group with SIGINT at its
        # default; a background shell would have it ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    started = time.monotonic()
    peak = 0
    while process.poll() is None:
        peak = max(peak, _rss_kib(process.pid))
        if stop_after is not None and time.monotonic() - started > stop_after:
            os.killpg(process.pid, signal.SIGINT)
            stop_after = None
        time.sleep(0.5)
    return process.returncode, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="interrupt the CLI (as Ctrl-C would) after this many seconds",
    )
    args = parser.parse_args()

    pool = test_pgns(9000, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "pgns.txt"
        target = Path(tmp) / "hashes.txt"
        source.write_text("".join(f"{pgn}\n" for pgn in islice(cycle(pool), args.lines)))
        command = [
            sys.executable,
            "-c",
            "from cli.eckid import app; app(prog_name='ketenpoort eckid')",
            "hash",
            str(source),
            "--hash-only",
            "--progress",
            "--workers",
            str(args.workers),
            "--output",
            str(target),
        ]
        if args.dry_run:
            command.append("--dry-run")
        print("$", " ".join(command[1:]), file=sys.stderr)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        code, peak_kib = _run(command, args.stop_after)
        elapsed = time.perf_counter() - started
        # The CLI waits for its worker processes, so their CPU time is included.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        load = os.getloadavg()
        written = len(target.read_text().splitlines()) if target.exists() else 0

    done = args.lines if args.dry_run else written
    rate = done / elapsed
    print(f"machine:      {os.cpu_count()} cores; load average after the run {load[0]:.2f}")
    print(f"lines:        {args.lines}")
    print(f"workers:      {args.workers}")
    print(f"dry run:      {args.dry_run}")
    print(f"exit code:    {code}" + (" (interrupted)" if code == 130 else ""))
    print(f"hashes out:   {written}")
    print(f"wall time:    {elapsed:.1f} s (including interpreter and worker start-up)")
    print(f"throughput:   {rate:.3f} lines/s")
    print(f"CPU time:     {cpu:.1f} s in the CLI and its workers")
    print(f"peak RSS:     {peak_kib / 1024:.0f} MiB in the CLI's main process (workers excluded)")
    if not args.dry_run and written:
        per_hash = cpu / written
        print(f"CPU per hash: {per_hash:.2f} s (barely affected by other load, unlike wall time)")
        print(f"100,000 lines at the measured rate: {100_000 / rate / 3600:.1f} h")
        ideal = 100_000 * per_hash / args.workers / 3600
        print(f"100,000 lines on {args.workers} idle cores: {ideal:.1f} h")
    return 0 if code in (0, 130) else code


if __name__ == "__main__":
    raise SystemExit(main())
