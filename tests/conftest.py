"""Test fixtures: every database test runs against SQLite AND PostgreSQL.

Each backend gets a throwaway database (a temp file; a `ketenpoort_test_…`
database created on the PostgreSQL server and dropped afterwards), migrated once
with Alembic and loaded with a small demo. Each test then runs inside an outer
transaction that is rolled back (SQLAlchemy's "joining a session into an
external transaction"), so tests never see each other's writes.

PostgreSQL is found at KETENPOORT_TEST_POSTGRES_URL (default: the machine's
server, database `test`, used only to create and drop the throwaway database).
When it is unreachable the PostgreSQL half is skipped locally, but FAILS when
CI is set: CI must prove both backends.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from db.demo import load_demo
from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade_connection
from gateway.limits import gateway_schema
from gateway.tokens import TokenError, TokenVerifier, mint_token
from resolvers.clock import today
from resolvers.context import Context
from settings import Environment, Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "KETENPOORT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ONLY = os.environ.get("KETENPOORT_TEST_BACKENDS", "sqlite,postgresql").split(",")
BACKENDS = [b for b in ("sqlite", "postgresql") if b in ONLY]

TEST_SETTINGS = Settings(environment=Environment.TEST, database_url="sqlite+aiosqlite://")
SANDBOX_KEY = b"ketenpoort-test-sandbox-key"
DEMO_PUPILS = 100


@dataclass
class Backend:
    name: str
    url: str
    engine: AsyncEngine

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"


async def _create_postgres_database() -> tuple[str, str]:
    admin = create_engine(POSTGRES_ADMIN_URL)
    name = f"ketenpoort_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        await admin.dispose()
        message = f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI requires PostgreSQL)", pytrace=False)
        pytest.skip(message)
    await admin.dispose()
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return name, url


async def _drop_postgres_database(name: str) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@asynccontextmanager
async def demo_database(
    kind: str, *, pupils: int = 20, pool_size: int = 10
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A new database of `kind` (sqlite, or a throwaway database on the PostgreSQL
    server), migrated, with a small demo loaded: its URL and an engine on it. The
    engine is disposed and the PostgreSQL database dropped afterwards."""
    dropped: str | None = None
    if kind == "postgresql":
        dropped, url = await _create_postgres_database()
    else:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='ketenpoort-test-')) / 't.db'}"
    engine = create_engine(url, pool_size=pool_size)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(upgrade_connection)
            await conn.commit()
        async with create_sessionmaker(engine)() as session, session.begin():
            await load_demo(session, today=today(), sandbox_key=SANDBOX_KEY, pupils=pupils)
        yield url, engine
    finally:
        await engine.dispose()
        if dropped:
            await _drop_postgres_database(dropped)


@pytest.fixture(scope="session", params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A migrated database with a small demo loaded, for the whole session."""
    async with demo_database(request.param, pupils=DEMO_PUPILS) as (url, engine):
        yield Backend(request.param, url, engine)


@pytest.fixture
async def connection(backend: Backend) -> AsyncIterator[AsyncConnection]:
    async with backend.engine.connect() as conn:
        outer = await conn.begin()
        yield conn
        await outer.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    session = AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    await session.close()


class StatementCounter:
    """Counts SQL statements sent on a connection (to catch N+1 queries)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.count = 0
        self.statements: list[str] = []
        self._target = connection.sync_connection
        event.listen(self._target, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *args: Any) -> None:
        statement = args[2]
        if statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            return
        self.count += 1
        self.statements.append(statement)

    def reset(self) -> None:
        self.count = 0
        self.statements.clear()

    def close(self) -> None:
        event.remove(self._target, "before_cursor_execute", self._on_execute)


@pytest.fixture
def statements(connection: AsyncConnection) -> Any:
    counter = StatementCounter(connection)
    yield counter
    counter.close()


_SCHEMA = gateway_schema(TEST_SETTINGS)


def token_for(supplier: str, *roles: str, school: str | None = None, **kw: Any) -> str:
    return mint_token(
        TEST_SETTINGS,
        supplier,
        list(roles),
        school=school,
        lifetime=kw.get("lifetime", timedelta(hours=1)),
    )


class GraphQLClient:
    """Executes operations through the real schema on the test's session, with
    the same token verification as HTTP."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.verifier = TokenVerifier(TEST_SETTINGS)

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_: tuple[str, ...] | None = ("operator", "operator"),
        token: str | None = None,
        school: str | None = None,
    ) -> Any:
        context = Context(TEST_SETTINGS, lambda: self.session)
        if token is None and as_ is not None:
            token = token_for(as_[0], *as_[1:], school=school)
        try:
            context.caller = self.verifier.verify(f"Bearer {token}" if token else None)
        except TokenError as error:
            context.auth_error = str(error)
        result = await _SCHEMA.execute(query, variable_values=variables, context_value=context)
        if self.session.bind.dialect.name == "postgresql":
            await compare_compiled(self.session, context, query, variables, result)
        await context.finish()
        return result

    async def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Execute and insist on no errors."""
        result = await self.execute(query, variables, **kw)
        assert result.errors is None, [e.formatted for e in result.errors]
        return result.data


# --- compiled reads: the resolver path is the oracle ----------------------------------------
# On PostgreSQL every operation a test executes also runs compiled (compiler/), on the
# same transaction's connection, before the request's audit rows are written; the two
# answers (data, errors with their paths, audit reads) must be equal. Operations the
# compiler hands back (`Fallback`) are counted in COMPILED_READS.

COMPILED_READS: dict[str, int] = {"compiled": 0, "fallback": 0}
_COMPILER: Any = None


async def compare_compiled(
    session: AsyncSession, context: Context, query: str, variables: Any, result: Any
) -> None:
    from tests.compiler.oracle import check_compiled

    global _COMPILER
    if _COMPILER is None:
        from compiler import ReadCompiler

        _COMPILER = ReadCompiler(_SCHEMA, TEST_SETTINGS)
    outcome = await check_compiled(_COMPILER, session, context, query, variables, result)
    COMPILED_READS[outcome] += 1


@pytest.fixture
def gql(session: AsyncSession) -> GraphQLClient:
    return GraphQLClient(session)


@dataclass
class LiveGateway:
    """The ASGI app on its own committed database, for tests of truly concurrent
    requests (the rolled-back `session` fixture serialises everything on one
    connection, so it cannot show a race)."""

    backend: Backend
    client: Any
    engine: AsyncEngine

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_: tuple[str, ...] = ("operator", "operator"),
    ) -> Any:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token_for(as_[0], *as_[1:])}"},
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]


@pytest.fixture(scope="module")
async def live(backend: Backend) -> AsyncIterator[LiveGateway]:
    """A fresh database of the test's backend (migrated, small demo) behind the real
    ASGI app, driven through httpx; dropped afterwards."""
    import httpx

    from app import create_app

    async with demo_database(backend.name, pool_size=20) as (_url, engine):
        app = create_app(TEST_SETTINGS, sessionmaker=create_sessionmaker(engine))
        # The lifespan opens what the app runs on (on PostgreSQL: the activations'
        # group commit on the plain pool, the reference cache, the live broker).
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as client,
        ):
            yield LiveGateway(backend, client, engine)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if COMPILED_READS["compiled"] or COMPILED_READS["fallback"]:
        reasons = _COMPILER.fallbacks.most_common(8) if _COMPILER is not None else []
        terminalreporter.write_line(
            f"compiled reads checked against the resolvers: {COMPILED_READS['compiled']} "
            f"compiled, {COMPILED_READS['fallback']} on the resolvers (most common: {reasons})"
        )
