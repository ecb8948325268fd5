"""The write path every mutation shares: one transaction, idempotent by the
sender's reference id, refusals as typed payloads.

A repeated message (same sender, operation and reference id) gets the stored
answer and writes nothing. The reference is claimed at the START of the
transaction: a duplicate delivered in parallel blocks on that row until the
first commits, then finds the stored answer, so it can never run the change a
second time (or be refused by the state the first one produced).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import idempotency
from db.idempotency import ReferenceConflict, remember, replay, request_hash
from db.outbox import Actor
from resolvers.auth import Principal
from resolvers.context import Context

Work = Callable[[AsyncSession], Awaitable[dict[str, Any]]]


def actor(principal: Principal, role: str) -> Actor:
    return Actor(principal.supplier_id, role)


async def run_once(
    context: Context,
    principal: Principal,
    operation: str,
    reference_id: str,
    message: Any,
    work: Work,
) -> tuple[dict[str, Any], bool]:
    """Run `work` in one transaction unless this message was processed before.

    Returns (answer, replayed). Raises `ReferenceConflict` for a reused reference
    with a different message, and whatever `work` raises (rolled back)."""
    digest = request_hash(message)
    supplier_id = principal.supplier_id
    for attempt in range(3):
        try:
            async with context.db.transaction() as session:
                stored = await replay(session, supplier_id, operation, reference_id, digest)
                if stored is not None:
                    return stored, True
                await remember(session, supplier_id, operation, reference_id, digest, {})
                answer = await work(session)
                await idempotency.answer(session, supplier_id, operation, reference_id, answer)
                context.fresh_loaders()
                return answer, False
        except IntegrityError:
            # A parallel duplicate claimed the reference first; the next attempt
            # finds its stored answer. Any other integrity error repeats and is raised.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def run_write(
    context: Context,
    principal: Principal,
    operation: str,
    reference_id: str | None,
    message: Callable[[], Any],
    work: Work,
) -> tuple[dict[str, Any], bool]:
    """`run_once` when the sender gave a reference id (``message()`` builds what is
    hashed, only then); otherwise one transaction,
    retried (at most three times) when a concurrent writer made it hit a unique
    constraint, so `work` must re-read what it decides on (a double click finds
    the licence the first click created)."""
    if reference_id is not None:
        return await run_once(context, principal, operation, reference_id, message(), work)
    for attempt in range(3):
        try:
            async with context.db.transaction() as session:
                answer = await work(session)
            context.fresh_loaders()
            return answer, False
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


__all__ = ["ReferenceConflict", "actor", "run_once", "run_write"]
