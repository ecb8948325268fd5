"""The write path every use case but activation shares: one transaction, idempotent
by the sender's reference id.

A repeated message (same sender, operation and reference id) gets the stored
answer and writes nothing. The reference is claimed at the START of the
transaction: a duplicate delivered in parallel blocks on that row until the
first commits, then finds the stored answer, so it can never run the change a
second time (or be refused by the state the first one produced).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import idempotency
from db.idempotency import ReferenceConflict, remember, replay, request_hash
from domain.roles import Principal

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[dict[str, Any]]]


class Transactions(Protocol):
    """Where a use case reads and writes: the request's session (`resolvers/context.py`
    Database) or any object that opens one transaction at a time."""

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T: ...


ATTEMPTS = 3


async def _retried(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` (one transaction) again when it hit a unique constraint, at most
    ATTEMPTS times; the last IntegrityError is raised."""
    for number in range(ATTEMPTS):
        try:
            return await attempt()
        except IntegrityError:
            if number == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def run_once(
    db: Transactions,
    principal: Principal,
    operation: str,
    reference_id: str,
    message: Any,
    work: Work,
    changed: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run `work` in one transaction unless this message was processed before.

    Returns (answer, replayed). Raises `ReferenceConflict` for a reused reference
    with a different message, and whatever `work` raises (rolled back). `changed`
    is called when `work` ran (the request's loaders forget their rows). A parallel
    duplicate that claimed the reference first makes the claim fail: the next
    attempt finds its stored answer."""
    digest = request_hash(message)
    supplier_id = principal.supplier_id

    async def attempt() -> tuple[dict[str, Any], bool]:
        async with db.transaction() as session:
            stored = await replay(session, supplier_id, operation, reference_id, digest)
            if stored is not None:
                return stored, True
            await remember(session, supplier_id, operation, reference_id, digest, {})
            answer = await work(session)
            await idempotency.answer(session, supplier_id, operation, reference_id, answer)
            if changed is not None:
                changed()
            return answer, False

    return await _retried(attempt)


async def run_write(
    db: Transactions,
    principal: Principal,
    operation: str,
    reference_id: str | None,
    message: Callable[[], Any],
    work: Work,
    changed: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """`run_once` when the sender gave a reference id (``message()`` builds what is
    hashed, only then); otherwise one transaction, retried when a concurrent writer
    made it hit a unique constraint, so `work` must re-read what it decides on (a
    double click finds the licence the first click created)."""
    if reference_id is not None:
        return await run_once(db, principal, operation, reference_id, message(), work, changed)

    async def attempt() -> tuple[dict[str, Any], bool]:
        async with db.transaction() as session:
            answer = await work(session)
        if changed is not None:
            changed()
        return answer, False

    return await _retried(attempt)


__all__ = ["ReferenceConflict", "Transactions", "run_once", "run_write"]
