"""Bulk statements that stay fast for thousands of values on both databases.

PostgreSQL: a list of values is sent as ONE array parameter (`= ANY(:array)`,
`unnest`) rather than as thousands of bind parameters, and a transaction that
looks up thousands of values asks for custom plans (`force_custom_plans`).
asyncpg prepares statements, and after five executions PostgreSQL may switch to
a generic plan, which cannot hash the array and compares every row with every
value: a 5,000-pupil lookup became five times slower from the sixth delivery on
(seen in bench/delivery.py, with IN lists, ANY and IN (SELECT unnest) alike).
Compiling a multi-row VALUES of 20,000 parameters also costs most of a second in
Python, hence `insert_rows`. SQLite runs in-process, so
plain IN lists and executemany are cheap there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def one_of(
    session: AsyncSession, column: Any, values: Sequence[Any], *, integer: bool = False
) -> ColumnElement[bool]:
    """`column IN values`, as one array parameter on PostgreSQL."""
    if is_postgres(session):
        element = BigInteger() if integer else String()
        array = bindparam(None, list(values), type_=ARRAY(element))
        return column == any_(array)  # type: ignore[no-any-return]
    return column.in_(list(values))  # type: ignore[no-any-return]


async def insert_rows(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows of plain columns: `INSERT … SELECT unnest(…)` on PostgreSQL
    (one statement, one array per column), executemany on SQLite."""
    if not rows:
        return
    if not is_postgres(session):
        await session.execute(insert(table), rows)
        return
    columns = list(rows[0])
    types = {
        c.name: c.type.compile(dialect=session.bind.dialect)  # type: ignore[union-attr]
        for c in table.__table__.columns
    }
    arrays = ", ".join(f"CAST(:{name} AS {types[name]}[])" for name in columns)
    statement = text(
        f"INSERT INTO {table.__tablename__} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
    )
    await session.execute(statement, {name: [row[name] for row in rows] for name in columns})


async def force_custom_plans(session: AsyncSession) -> None:
    """For the rest of this transaction, plan each statement for its actual values
    (bulk lookups; see the module docstring). No-op on SQLite."""
    if is_postgres(session):
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
