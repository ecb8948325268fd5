"""Keyset pagination: every list is ordered by a unique key and cut by the
database, with a bounded page size; cursors are opaque to callers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.cursors import (
    InvalidCursor,
    decode_cursor,
    decode_event_cursor,
    encode_cursor,
    event_cursor,
)

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    rows: list[T]
    keys: list[int]
    has_next: bool
    count_statement: Select[Any]
    kind: str

    def cursor(self, index: int) -> str:
        return encode_cursor(self.kind, self.keys[index])


async def fetch_page(
    session: AsyncSession,
    statement: Select[Any],
    key_column: Any,
    *,
    kind: str,
    first: int,
    after: str | None,
) -> Page[Any]:
    """Rows after the cursor, ordered by `key_column`; one extra row tells
    whether there is a next page."""
    count_statement = select(func.count()).select_from(statement.order_by(None).subquery())
    if after is not None:
        statement = statement.where(key_column > decode_cursor(kind, after))
    rows = list((await session.scalars(statement.order_by(key_column).limit(first + 1))).all())
    has_next = len(rows) > first
    rows = rows[:first]
    return Page(rows, [row.id for row in rows], has_next, count_statement, kind)


async def count(session: AsyncSession, statement: Select[Any]) -> int:
    return int((await session.execute(statement)).scalar_one())


__all__ = [
    "InvalidCursor",
    "Page",
    "count",
    "decode_cursor",
    "decode_event_cursor",
    "encode_cursor",
    "event_cursor",
    "fetch_page",
]
