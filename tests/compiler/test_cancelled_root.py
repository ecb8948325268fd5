"""A refused non-null root field makes graphql-core cancel its siblings while their
statements run; the request's session must survive that (`resolvers.context.Database`):
the started statement finishes, the connection is not invalidated, the session
answers the next statement, and nothing is left for the pool to reconnect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from db.engine import create_sessionmaker
from gateway.tokens import TokenVerifier
from resolvers.context import Context, Database
from tests.conftest import _SCHEMA, TEST_SETTINGS, token_for

#: A page of entitlements (its statement runs when the refusal comes) beside a root
#: field the dashboard role may not ask for (`dataExchanges` is the school's).
REFUSED_BESIDE_PAGE = """{
  entitlements(first: 100) { nodes { id school { name } product { name } licences { id } } }
  dataExchanges(school: {value: "104A158"}) { school { rioId } }
}"""


@pytest.fixture
def invalidations(backend: Any) -> Iterator[list[Any]]:
    """Connections the backend's pool invalidated during the test."""
    found: list[Any] = []

    def on_invalidate(dbapi_connection: Any, record: Any, exception: Any) -> None:
        found.append(exception)

    target = backend.engine.sync_engine
    event.listen(target, "invalidate", on_invalidate)
    event.listen(target, "soft_invalidate", on_invalidate)
    yield found
    event.remove(target, "invalidate", on_invalidate)
    event.remove(target, "soft_invalidate", on_invalidate)


def _context(backend: Any, supplier: str, *roles: str) -> Context:
    context = Context(TEST_SETTINGS, create_sessionmaker(backend.engine))
    context.caller = TokenVerifier(TEST_SETTINGS).verify("Bearer " + token_for(supplier, *roles))
    return context


async def test_refused_root_field_leaves_the_session_usable(
    backend: Any, invalidations: list[Any]
) -> None:
    for _ in range(3):
        context = _context(backend, "demo-dashboard", "dashboard")
        result = await _SCHEMA.execute(REFUSED_BESIDE_PAGE, context_value=context)
        assert result.data is None
        assert [(e.path, e.extensions["code"]) for e in result.errors] == [
            (["dataExchanges"], "FORBIDDEN")
        ]
        # The same request's session still answers (before the fix: PendingRollbackError,
        # the connection invalidated under the cancelled statement).
        answer = await context.db.run(lambda s: s.execute(text("SELECT 42")))
        assert answer.scalar() == 42
        context.reads.clear()  # nothing of this test goes to the shared audit log
        await context.finish()
    assert invalidations == []


async def test_a_cancelled_statement_runs_to_its_end(
    backend: Any, invalidations: list[Any]
) -> None:
    if not backend.is_postgres:
        pytest.skip("pg_stat_activity: PostgreSQL")
    database = Database(create_sessionmaker(backend.engine))
    marker = "ketenpoort-test-cancelled-statement"
    slow = database.run(lambda s: s.execute(text(f"SELECT pg_sleep(2) /* {marker} */")))
    task = asyncio.ensure_future(slow)
    # Wait (bounded) until PostgreSQL runs it, then cancel the caller mid-statement.
    async with backend.engine.connect() as observer:
        deadline = time.monotonic() + 60  # a busy machine may take long to start it
        while time.monotonic() < deadline:
            running = await observer.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND query LIKE :q AND query NOT LIKE '%pg_stat_activity%'"
                ),
                {"q": f"%{marker}%"},
            )
            await observer.rollback()
            if running:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the statement never ran")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The next statement waits for the cancelled one and runs on the same session.
    answer = await database.run(lambda s: s.execute(text("SELECT 7")))
    assert answer.scalar() == 7
    await database.close()
    assert invalidations == []


async def test_a_caller_cancelled_while_waiting_runs_nothing(backend: Any) -> None:
    database = Database(create_sessionmaker(backend.engine))
    ran: list[str] = []
    release = asyncio.Event()

    async def holding(session: Any) -> None:
        await release.wait()
        ran.append("first")

    async def waiting(session: Any) -> None:
        ran.append("second")

    first = asyncio.ensure_future(database.run(holding))
    second = asyncio.ensure_future(database.run(waiting))
    await asyncio.sleep(0)  # both started: the first holds the lock, the second waits
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    release.set()
    await first
    await database.close()
    assert ran == ["first"]
