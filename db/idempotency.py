"""Messages can arrive twice (DOMAIN.md §5): a repeated reference id is not
processed again; the sender gets the stored answer. The same reference id with
a different message is a conflict, never silently accepted."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ProcessedMessage


class ReferenceConflict(Exception):
    """The reference id was used before for a different message."""


def request_hash(message: Any) -> str:
    canonical = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def replay(
    session: AsyncSession, supplier_id: int, operation: str, reference_id: str, digest: str
) -> dict[str, Any] | None:
    row = await session.scalar(
        select(ProcessedMessage).where(
            ProcessedMessage.supplier_id == supplier_id,
            ProcessedMessage.operation == operation,
            ProcessedMessage.reference_id == reference_id,
        )
    )
    if row is None:
        return None
    if row.request_hash != digest:
        raise ReferenceConflict(
            f"referenceId {reference_id!r} was already used for a different {operation} message"
        )
    return row.response


async def remember(
    session: AsyncSession,
    supplier_id: int,
    operation: str,
    reference_id: str,
    digest: str,
    response: dict[str, Any],
) -> None:
    await session.execute(
        insert(ProcessedMessage).values(
            supplier_id=supplier_id,
            operation=operation,
            reference_id=reference_id,
            request_hash=digest,
            response=response,
        )
    )


async def answer(
    session: AsyncSession,
    supplier_id: int,
    operation: str,
    reference_id: str,
    response: dict[str, Any],
) -> None:
    """Store the answer of a claimed message (`remember` claimed it with `{}`)."""
    await session.execute(
        update(ProcessedMessage)
        .where(
            ProcessedMessage.supplier_id == supplier_id,
            ProcessedMessage.operation == operation,
            ProcessedMessage.reference_id == reference_id,
        )
        .values(response=response)
    )
