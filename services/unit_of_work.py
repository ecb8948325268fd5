"""What the activation use case needs from a store, and what it hands back.

A store (`db/activation_pg.py`, `db/activation_orm.py`) reads facts, owns the
transaction (its own on PostgreSQL's pool; the caller's on a session), keeps the
idempotency records (claimed at the start of the transaction, so a duplicate sent
in parallel waits for the first and then gets its answer) and writes the licences
with their events and audit rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from db.activation import ActivationRequest, Gathered, HeldLicence, Registration, SeatState
from domain.roles import Actor

#: (supplier id, operation, referenceId): one message, processed once.
ReferenceKey = tuple[int, str, str]


@dataclass(frozen=True)
class Reference:
    key: ReferenceKey
    #: The message's hash: the same referenceId with another message is a conflict.
    digest: str


@dataclass(frozen=True)
class Click:
    """One licenceActivate: the decoded request, who sends it, its referenceId."""

    request: ActivationRequest
    actor: Actor
    reference: Reference | None = None


@dataclass(frozen=True)
class Answered:
    """A click's answer as stored for its referenceId (JSON), and whether it is the
    stored answer of an earlier message."""

    answer: dict[str, Any]
    replayed: bool = False


class Retry:
    """The click must be decided again in a later batch (its person is already
    registering a licence in this one, or the message it repeats is still open)."""


RETRY = Retry()


class ActivationStore(Protocol):
    async def gather(
        self, requests: Sequence[ActivationRequest], today: date
    ) -> list[Gathered]: ...

    async def stored(self, keys: Sequence[ReferenceKey]) -> dict[ReferenceKey, tuple[str, Any]]: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    async def claim(self, refs: Sequence[tuple[ReferenceKey, str]]) -> set[ReferenceKey]: ...

    async def lock(
        self, entitlement_ids: Sequence[int], holders: Sequence[tuple[int, int]] = ()
    ) -> dict[int, SeatState]:
        """Lock the entitlements' seats and the (person, product) pairs' licences
        until the transaction ends; the seats as they are now."""
        ...

    async def current(
        self,
        person_ids: Sequence[int],
        product_ids: Sequence[int],
        entitlee_ids: Sequence[int],
    ) -> tuple[list[HeldLicence], dict[int, str | None]]: ...

    async def register(
        self, registrations: Sequence[Registration]
    ) -> list[tuple[int, datetime]]: ...

    async def remember(self, answers: Sequence[tuple[ReferenceKey, dict[str, Any]]]) -> None: ...

    async def release(self, keys: Sequence[ReferenceKey]) -> None: ...

    async def committed(self) -> None: ...
