"""The `ketenpoort` command: migrate, load the demo, mint development tokens,
serve the gateway, export the schema, and the ECK iD toolkit (`eckid`)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import quote

import typer

from settings import get_settings

app = typer.Typer(
    help="ketenpoort: GraphQL gateway for the Dutch educational content chain.",
    no_args_is_help=True,
)


def _mount_eckid() -> None:
    try:
        from cli.eckid import app as eckid_app
    except ImportError:  # the toolkit is optional for the gateway itself
        return
    app.add_typer(eckid_app, name="eckid", help="ECK iD toolkit: validate, NV-1 hash, sandbox.")


_mount_eckid()


@app.command()
def migrate(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the configured database (DATABASE_URL) to the latest schema."""
    from db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"migrated {settings.database_url} to {revision}")


@app.command()
def demo(
    pupils: int = typer.Option(1000, help="Number of pupils to create."),
    seed: int = typer.Option(7, help="Random seed (same seed, same data)."),
) -> None:
    """Load the demo data into the configured database, unless it holds data already."""
    from db.demo import is_loaded, load_demo
    from db.engine import create_engine, create_sessionmaker
    from resolvers.clock import today

    settings = get_settings()
    if settings.is_production():
        typer.echo("refusing to load demo data into a production gateway", err=True)
        raise typer.Exit(2)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                if await is_loaded(session):
                    typer.echo("demo data already present; nothing loaded")
                    return
                summary = await load_demo(
                    session,
                    today=today(),
                    sandbox_key=settings.sandbox_key.encode(),
                    pupils=pupils,
                    seed=seed,
                )
                typer.echo(f"demo loaded: {summary}")
        finally:
            await engine.dispose()

    asyncio.run(run())


@app.command()
def token(
    supplier: str = typer.Argument("operator", help="Supplier code (the token's `sub`)."),
    scope: list[str] = typer.Option(
        ["operator"], "--scope", "-s", help="Role(s) to grant; repeat for several."
    ),
    school: str | None = typer.Option(
        None, help="For the school role (required there): a school the account is registered for."
    ),
    hours: int = typer.Option(12, help="Lifetime in hours (at most the token lifetime ceiling)."),
    url: bool = typer.Option(False, help="Print a GraphiQL URL with the token filled in."),
    base: str = typer.Option("http://127.0.0.1:8000/graphql", help="Gateway URL for --url."),
) -> None:
    """Mint a development token (HS256, refused in production)."""
    from datetime import timedelta

    from gateway.tokens import TokenError, mint_token

    try:
        value = mint_token(
            get_settings(), supplier, scope, school=school, lifetime=timedelta(hours=hours)
        )
    except (TokenError, ValueError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    if url:
        headers = json.dumps({"Authorization": f"Bearer {value}"})
        typer.echo(f"{base}?headers={quote(headers)}")
    else:
        typer.echo(value)


class _CliError(Exception):
    """A refusal the command reports on stderr (exit code 2)."""


@app.command("school-account")
def school_account(
    supplier: str = typer.Argument(..., help="The school account's supplier code."),
    school: str = typer.Argument(..., help="The school: its OA_ID or any RIO identifier."),
    remove: bool = typer.Option(False, help="Withdraw the school instead of adding it."),
) -> None:
    """Register (or withdraw) a school a school account may speak for: its tokens
    with the school scope may name only registered schools in their `school` claim."""
    from db import suppliers
    from db.engine import create_engine, create_sessionmaker
    from db.models import SupplierSchool
    from domain.identifiers import OrgLevel
    from domain.roles import Role
    from resolvers.context import Database
    from resolvers.lookup import OrgFound, find_organisation

    settings = get_settings()

    async def run() -> str:
        from sqlalchemy import delete

        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                # The lookup on the same session: on SQLite a second one would wait
                # for this one's write lock.
                found = await find_organisation(
                    Database(lambda: session), None, school, OrgLevel.PROVIDER
                )
                if not isinstance(found, OrgFound):
                    message = getattr(found, "message", None) or str(getattr(found, "error", ""))
                    raise _CliError(f"school {school!r}: {message}")
                account = await suppliers.registration(session, supplier)
                if account is None:
                    raise _CliError(f"no supplier has code {supplier!r}")
                if Role.SCHOOL not in account.roles:
                    raise _CliError(f"supplier {supplier!r} does not hold the school role")
                school_id, rio = found.row.id, found.row.rio_id
                if remove:
                    await session.execute(
                        delete(SupplierSchool).where(
                            SupplierSchool.supplier_id == account.supplier_id,
                            SupplierSchool.organisation_id == school_id,
                        )
                    )
                    return f"{supplier} no longer speaks for {rio}"
                added = await suppliers.register_school(session, account.supplier_id, school_id)
                return f"{supplier} speaks for {rio}" + ("" if added else " (already registered)")
        finally:
            await engine.dispose()

    try:
        typer.echo(asyncio.run(run()))
    except _CliError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Serve the gateway with uvicorn."""
    import os
    import shutil
    import tempfile

    settings = get_settings()
    # Metrics from every worker (gateway/metrics.py): a fresh folder per start, unless
    # the operator names one (PROMETHEUS_MULTIPROC_DIR, emptied here).
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    else:
        folder = tempfile.mkdtemp(prefix="ketenpoort-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    if settings.metrics_port is not None:
        from gateway.metrics import serve_on_port

        serve_on_port(settings.metrics_port, host)
    from gateway import workers as worker_processes

    # Several workers each listen on a socket of their own (SO_REUSEPORT), so that the
    # kernel spreads connections over them (gateway/workers.py).
    worker_processes.serve(
        dict(
            app="app:create_app",
            factory=True,
            log_level=settings.log_level.lower(),
            log_config=None,  # the gateway's own logging (gateway/logging.py)
            access_log=False,  # one request line from the gateway instead
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
            lifespan="on",
            # Live messages are small JSON; compressing them would cost every
            # subscription a compressor (tens of KiB) and every message a deflate,
            # per subscriber: at thousands of subscribers, more than the fan-out itself.
            ws_per_message_deflate=False,
            server_header=False,  # `server: uvicorn` tells a client nothing it needs
        ),
        host,
        port,
        workers,
    )


@app.command("export-schema")
def export_schema(
    output: Path | None = typer.Option(None, help="Write here instead of stdout."),
) -> None:
    """Print the GraphQL schema (SDL); CI compares it with schema.graphql."""
    from resolvers.api import schema

    text = schema.as_str() + "\n"
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
