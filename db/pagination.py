"""Keyset pagination: every list is ordered by a unique key and cut by the
database, with a bounded page size; cursors are opaque to callers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class InvalidCursor(ValueError):
    pass


def encode_cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, _, key = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        if prefix != kind:
            raise InvalidCursor(f"this cursor belongs to a {prefix!r} list, not {kind!r}")
        return int(key)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, InvalidCursor):
            raise
        raise InvalidCursor(f"malformed cursor {cursor!r}") from exc


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


def event_cursor(tx_id: int, event_id: int) -> str:
    """The position of an event in the stream: (transaction id, event id); see
    `db.models.Event` for why the transaction id comes first."""
    return base64.urlsafe_b64encode(f"ev:{tx_id}:{event_id}".encode()).decode().rstrip("=")


def decode_event_cursor(cursor: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, tx_id, event_id = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        if prefix != "ev":
            raise ValueError(prefix)
        return int(tx_id), int(event_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor(f"malformed event cursor {cursor!r}") from exc
