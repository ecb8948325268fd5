"""``ketenpoort eckid``: the ECK iD toolkit for schools, suppliers and demo data.

* ``hash``: rule NV-1 (``domain.nv1``) over a file of identifiers (pupils' pgns,
  teachers' identifiers), as an administration system does before it asks the
  Nummervoorziening for an ECK iD. Runs on all cores, streams input of any size,
  and reports bad lines by line number only: a number that is not a valid pgn may
  still be most of someone's BSN, so it is never echoed.
* ``sandbox``: the gateway's own pilot-prefixed test ECK iDs
  (``domain.sandbox``). Refused when ``KETENPOORT_ENVIRONMENT=production``,
  the variable the gateway's settings read, so test identities cannot be minted
  next to real ones.
* ``validate``: checks ECK iDs line by line and says what is wrong with each.

Blank lines are skipped; a UTF-8 byte-order mark (spreadsheet exports) is ignored.
Exit codes: 0 all lines fine, 1 some lines invalid, 2 usage or configuration error.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import click
import typer
from tqdm import tqdm

from domain import nv1
from domain.identifiers import IdentifierError, Sector, parse_eck_id
from domain.nv1 import SaltError, decode_salt, hash_many, nv1_input
from domain.sandbox import MIN_KEY_BYTES, sandbox_eck_id

ENVIRONMENT_VARIABLE = "KETENPOORT_ENVIRONMENT"
SALT_VARIABLE = "KETENPOORT_NV1_SALT"
SANDBOX_KEY_VARIABLE = "KETENPOORT_SANDBOX_KEY"

EXIT_INVALID_LINES = 1
EXIT_USAGE = 2

app = typer.Typer(
    help="ECK iD toolkit: NV-1 hashing of identifiers, sandbox test ECK iDs, ECK iD "
    "validation.",
    no_args_is_help=True,
)

SourceArgument = Annotated[
    str,
    typer.Argument(help="File with one value per line, or '-' for standard input."),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write results here instead of standard output."),
]
SkipInvalidOption = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Still report invalid lines on stderr, but exit 0 instead of 1.",
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar and no summary on stderr.")
]
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Force the progress bar on or off (default: on when stderr is a terminal).",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=EXIT_USAGE)


def _open_source(source: str) -> IO[Any]:
    try:
        return click.open_file(source, "r", encoding="utf-8")
    except OSError as error:
        raise _fail(f"cannot read {source}: {error.strerror}") from None


def _lines(handle: IO[Any]) -> Iterator[tuple[int, str]]:
    """Yield (line number, stripped text) for every non-blank line, lazily."""
    with handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if number == 1:
                text = text.lstrip("\ufeff").strip()
            if text:
                yield number, text


def _count_lines(source: str) -> int | None:
    """Total for the progress bar; standard input cannot be read twice."""
    if source == "-":
        return None
    try:
        with open(source, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def _show_progress(progress: bool | None, quiet: bool) -> bool:
    if quiet:
        return False
    if progress is not None:
        return progress
    return sys.stderr.isatty()


def _open_output(output: Path | None) -> IO[Any]:
    try:
        return click.open_file(str(output) if output else "-", "w", encoding="utf-8")
    except OSError as error:
        raise _fail(f"cannot write {output}: {error.strerror}") from None


def _report(bar: tqdm, number: int, error: IdentifierError) -> None:
    # Through tqdm so the message does not tear the progress bar.
    bar.write(f"line {number}: {error.message}", file=sys.stderr)


def _finish(invalid: int, skip_invalid: bool) -> None:
    if invalid and not skip_invalid:
        raise typer.Exit(code=EXIT_INVALID_LINES)


@app.command("hash")
def hash_command(
    source: SourceArgument = "-",
    salt: Annotated[
        str | None,
        typer.Option(
            "--salt",
            envvar=SALT_VARIABLE,
            show_envvar=True,
            help="The Base64 salt from Kennisnet. Prefer the environment variable: a "
            "command-line argument is visible to other users in the process list.",
        ),
    ] = None,
    output: OutputOption = None,
    hash_only: Annotated[
        bool,
        typer.Option("--hash-only", help="Write only the hash, not 'identifier,hash'."),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Processes to hash with (default: all cores); each needs ~130 MiB."
        ),
    ] = os.cpu_count() or 1,
    skip_invalid: SkipInvalidOption = False,
    quiet: QuietOption = False,
    progress: ProgressOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read and validate every line and drive the progress bar, but hash and "
            "write nothing.",
        ),
    ] = False,
) -> None:
    """Hash identifiers with rule NV-1: pgns (BSN or onderwijsnummer) and teachers'
    identifiers.

    Writes 'identifier,hash' (CSV) per valid line, in input order: for a pgn its
    9-digit form, for anything else the line without surrounding whitespace; both
    are hashed lower-cased. A line of only digits, dots, hyphens and spaces is a pgn
    and must pass the 11-test.
    """
    if not salt:
        raise _fail(f"no salt: pass --salt or set {SALT_VARIABLE}")
    try:
        decode_salt(salt)
    except SaltError as error:
        raise _fail(str(error)) from None

    lines = _lines(_open_source(source))
    started = time.perf_counter()
    invalid = 0
    done = 0
    bar = tqdm(
        total=_count_lines(source),
        unit="id",
        file=sys.stderr,
        disable=not _show_progress(progress, quiet),
        dynamic_ncols=True,
    )
    # The identifiers sent to the pool but not yet written, so each hash can be
    # paired with its input; hash_many keeps order and only a small window is in flight.
    in_flight: deque[str] = deque()

    def valid_inputs() -> Iterator[str]:
        nonlocal invalid
        for number, text in lines:
            try:
                value = nv1_input(text)
            except IdentifierError as error:
                invalid += 1
                _report(bar, number, error)
                bar.update(1)
                continue
            if dry_run:
                bar.update(1)
            else:
                in_flight.append(value)
            yield value

    with bar:
        if dry_run:
            done = sum(1 for _ in valid_inputs())
        else:
            with _open_output(output) as out:
                rows = csv.writer(out, lineterminator="\n")
                # Read at call time so tests can substitute cheap parameters.
                params = nv1.NV1_PARAMS
                for digest in hash_many(valid_inputs(), salt, workers, params=params):
                    value = in_flight.popleft()
                    rows.writerow([digest] if hash_only else [value, digest])
                    done += 1
                    bar.update(1)

    if not quiet:
        elapsed = time.perf_counter() - started
        verb = "validated (dry run, nothing hashed)" if dry_run else "hashed"
        rate = done / elapsed if elapsed > 0 else 0.0
        typer.echo(
            f"{verb} {done} identifiers in {elapsed:.1f} s ({rate:.2f}/s) with {workers} "
            f"worker(s); {invalid} invalid line(s)",
            err=True,
        )
    _finish(invalid, skip_invalid)


@app.command("sandbox")
def sandbox_command(
    source: SourceArgument = "-",
    sector: Annotated[
        Sector,
        typer.Option(case_sensitive=False, help="The sector the test ECK iDs belong to."),
    ] = Sector.PO,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar=SANDBOX_KEY_VARIABLE,
            show_envvar=True,
            help="The gateway's sandbox key (at least 16 bytes).",
        ),
    ] = None,
    output: OutputOption = None,
    skip_invalid: SkipInvalidOption = False,
) -> None:
    """Make pilot-prefixed test ECK iDs from test pgns. Never in production.

    NOT the ECK iDs the Nummervoorziening issues (see domain/sandbox.py).
    """
    environment = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if environment == "production":
        raise _fail(
            f"{ENVIRONMENT_VARIABLE}=production: sandbox ECK iDs are test identities and "
            "are never made in production"
        )
    if not key:
        raise _fail(f"no sandbox key: pass --key or set {SANDBOX_KEY_VARIABLE}")
    key_bytes = key.encode("utf-8")
    if len(key_bytes) < MIN_KEY_BYTES:
        raise _fail(f"the sandbox key must be at least {MIN_KEY_BYTES} bytes")

    lines = _lines(_open_source(source))
    invalid = 0
    with _open_output(output) as out:
        for number, text in lines:
            try:
                out.write(sandbox_eck_id(text, sector, key_bytes) + "\n")
            except IdentifierError as error:
                invalid += 1
                typer.echo(f"line {number}: {error.message}", err=True)
    _finish(invalid, skip_invalid)


@app.command("validate")
def validate_command(
    source: SourceArgument = "-",
    production_only: Annotated[
        bool,
        typer.Option(
            "--production-only", help="Also refuse pilot and stampseudonym-pilot ECK iDs."
        ),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Check ECK iDs, one per line.

    Writes 'line<TAB>ok<TAB>environment' or 'line<TAB>problem<TAB>message' per line.
    """
    lines = _lines(_open_source(source))
    invalid = 0
    with _open_output(output) as out:
        for number, text in lines:
            try:
                eck_id = parse_eck_id(text, allow_pilot=not production_only)
            except IdentifierError as error:
                invalid += 1
                out.write(f"{number}\t{error.problem}\t{error.message}\n")
            else:
                out.write(f"{number}\tok\t{eck_id.environment.value}\n")
    _finish(invalid, skip_invalid=False)


if __name__ == "__main__":
    app()
