"""Engine and session factory for SQLite (embedded default) and PostgreSQL.

SQLite needs two adjustments to behave like a real transactional database under
SQLAlchemy: the driver's own implicit transaction handling is switched off so
that BEGIN/SAVEPOINT are emitted by SQLAlchemy (see SQLAlchemy's "Serializable
isolation / Savepoints / Transactional DDL" for pysqlite), and foreign keys are
switched on. Writes are serialised by SQLite itself; WAL lets readers go on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if is_sqlite_url(url):
        # One writer at a time is all SQLite allows; a busy timeout makes a second
        # writer wait instead of failing with "database is locked".
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["pool_pre_ping"] = False
    engine = create_async_engine(url, **kwargs)
    if is_sqlite_url(url):
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if ":memory:" not in str(engine.url):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so two transactions that read
        # then write cannot deadlock on the lock upgrade. Work that only reads
        # (`read_only`) begins DEFERRED: in WAL mode it reads a snapshot without
        # queueing for the write lock behind every other transaction.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


#: Execution option: this transaction only reads (SQLite then begins DEFERRED).
READ_ONLY = "ketenpoort_read_only"


async def read_only(session: AsyncSession) -> None:
    """Mark a session that has not begun yet as read-only (call before its first
    statement): on SQLite it then reads a WAL snapshot instead of taking the write
    lock. Live subscriptions read this way, thousands of times a minute."""
    await session.connection(execution_options={READ_ONLY: True})


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
