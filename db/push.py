"""The push registry (issue 18): suppliers' own event endpoints, where each one
stands in the event stream, what its receiver answered per event, and who is
delivering to it right now.

* `push_endpoint`: the URL, how to authenticate (the secret only encrypted,
  push/secrets.py), which event kinds, the batch size; the stream position
  delivered up to (`cursor_tx`, `cursor_id`, the same positions as db/events.py);
  the retry state (`failures`, `next_attempt_at`, `paused_until`); the lease
  (`lease_owner`, `lease_until`) that lets one gateway process at a time deliver
  to it; and counters for the status query.
* `push_answer`: the receiver's answer to every event it was sent (status 0 or a
  refusal), keyed by endpoint and event, so a repeat overwrites, never doubles.
* `push_seed`: a request to push the current state of a school to an endpoint.

Every write that a delivering process makes is fenced by its lease
(`lease_owner = me`): a process that lost its lease cannot move the cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, enum_check, enum_column
from db.events import Topic
from domain.identifiers import PersonIdScheme
from domain.roles import Role

Timestamp = DateTime(timezone=True)


class AuthKind(StrEnum):
    """How the gateway authenticates to an endpoint: an OAuth 2.0 access token from
    the receiver's own token server (client credentials), or an HMAC signature of
    each request with a shared secret."""

    OAUTH2 = "OAUTH2"
    SIGNED = "SIGNED"


class PushEndpoint(Base):
    """A supplier's events endpoint and the delivery state of its stream."""

    __tablename__ = "push_endpoint"
    __table_args__ = (
        enum_check("auth", AuthKind),
        CheckConstraint("batch_size BETWEEN 1 AND 500", name="batch_size"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    supplier_id: Mapped[int] = mapped_column(
        ForeignKey("supplier.id", ondelete="CASCADE"), nullable=False, index=True
    )
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    auth: Mapped[str] = enum_column(AuthKind)
    token_url: Mapped[str | None] = mapped_column(String(2000))
    client_id: Mapped[str | None] = mapped_column(String(200))
    scope: Mapped[str | None] = mapped_column(String(500))
    secret_cipher: Mapped[str] = mapped_column(Text, nullable=False)
    #: EventKind values to send; null: every kind.
    kinds: Mapped[list[str] | None] = mapped_column(JSON)
    batch_size: Mapped[int] = mapped_column(Integer, nullable=False, server_default="100")
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="1")
    #: Raised by every change through the API; a delivering process reloads then.
    config_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    cursor_tx: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    cursor_id: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    paused_until: Mapped[datetime | None] = mapped_column(Timestamp)
    last_success_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: When the oldest event not yet delivered was committed (null: none waiting).
    pending_since: Mapped[datetime | None] = mapped_column(Timestamp)
    delivered_events: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    refused_events: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed_attempts: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.now()
    )


class PushAnswer(Base):
    """What a receiver answered to one event (status 0: accepted). Kept for
    `push_answer_retention_days` (`delete_old_answers`)."""

    __tablename__ = "push_answer"
    __table_args__ = (
        # The retention's delete, oldest first.
        Index("ix_push_answer_answered_at", "answered_at"),
        # The status's latest refusals (a few of many answers).
        Index(
            "ix_push_answer_refused",
            "endpoint_id",
            "event_id",
            postgresql_where=text("status <> 0"),
            sqlite_where=text("status <> 0"),
        ),
    )

    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("push_endpoint.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), nullable=False)
    status: Mapped[int | None] = mapped_column(Integer)
    status_message: Mapped[str | None] = mapped_column(String(500))
    http_status: Mapped[int | None] = mapped_column(Integer)
    answered_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class PushProcess(Base):
    """A gateway process that delivers: it says so at every lease round, so each
    process knows how many share the endpoints (lease balancing)."""

    __tablename__ = "push_process"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_until: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class PushSeed(Base):
    """A request to push the current state of one school to one endpoint."""

    __tablename__ = "push_seed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("push_endpoint.id", ondelete="CASCADE"), nullable=False, index=True
    )
    school_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), nullable=False)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.now()
    )
    done_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sent: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


# --- the registry ------------------------------------------------------------------------


async def endpoint(session: AsyncSession, endpoint_id: int) -> PushEndpoint | None:
    return await session.get(PushEndpoint, endpoint_id, populate_existing=True)


async def endpoints(session: AsyncSession, supplier_id: int | None = None) -> list[PushEndpoint]:
    statement = select(PushEndpoint).order_by(PushEndpoint.id)
    if supplier_id is not None:
        statement = statement.where(PushEndpoint.supplier_id == supplier_id)
    return list(await session.scalars(statement))


async def add_endpoint(session: AsyncSession, **values: Any) -> PushEndpoint:
    row = PushEndpoint(**values)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def change_endpoint(
    session: AsyncSession, endpoint_id: int, values: dict[str, Any]
) -> PushEndpoint:
    """Change an endpoint's settings; the delivering process reloads them."""
    await session.execute(
        update(PushEndpoint)
        .where(PushEndpoint.id == endpoint_id)
        .values(
            **values,
            config_version=PushEndpoint.config_version + 1,
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )
    row = await session.get(PushEndpoint, endpoint_id, populate_existing=True)
    assert row is not None
    return row


async def remove_endpoint(session: AsyncSession, endpoint_id: int) -> None:
    """Remove an endpoint with its answers and seeds (the audit trail keeps that it was)."""
    await session.execute(delete(PushSeed).where(PushSeed.endpoint_id == endpoint_id))
    await session.execute(delete(PushAnswer).where(PushAnswer.endpoint_id == endpoint_id))
    await session.execute(delete(PushEndpoint).where(PushEndpoint.id == endpoint_id))


async def delivering_roles(
    session: AsyncSession, supplier_ids: Iterable[int]
) -> dict[int, frozenset[Role]]:
    """The roles each endpoint's supplier receives events in: its registered roles,
    without operator and school (an endpoint never sees everything)."""
    from db.models import SupplierRole

    found: dict[int, set[Role]] = {supplier: set() for supplier in supplier_ids}
    rows = await session.execute(
        select(SupplierRole.supplier_id, SupplierRole.role).where(
            SupplierRole.supplier_id.in_(sorted(found))
        )
    )
    for supplier, role in rows:
        found[supplier].add(Role(role))
    return {
        supplier: frozenset(roles) - {Role.OPERATOR, Role.SCHOOL}
        for supplier, roles in found.items()
    }


async def refusals(session: AsyncSession, endpoint_id: int, limit: int) -> list[PushAnswer]:
    """The latest per-event refusals (status other than 0), newest first."""
    rows = await session.scalars(
        select(PushAnswer)
        .where(PushAnswer.endpoint_id == endpoint_id, PushAnswer.status != 0)
        .order_by(PushAnswer.event_id.desc())
        .limit(limit)
    )
    return list(rows)


async def answers_for(
    session: AsyncSession, endpoint_id: int, event_ids: Sequence[int]
) -> dict[int, PushAnswer]:
    rows = await session.scalars(
        select(PushAnswer).where(
            PushAnswer.endpoint_id == endpoint_id, PushAnswer.event_id.in_(list(event_ids))
        )
    )
    return {row.event_id: row for row in rows}


# --- leases ------------------------------------------------------------------------------


async def acquire(
    session: AsyncSession, owner: str, now: datetime, until: datetime, limit: int
) -> list[int]:
    """Take (or keep) the lease of up to `limit` enabled endpoints whose lease is
    free, expired or already ours; the ids now leased to `owner`. One statement:
    two processes racing for a row cannot both win it (the UPDATE re-checks the
    condition on the row it locks)."""
    free = and_(
        PushEndpoint.enabled.is_(True),
        or_(
            PushEndpoint.lease_owner.is_(None),
            PushEndpoint.lease_owner == owner,
            PushEndpoint.lease_until < now,
        ),
    )
    # Its own first: a process keeps what it delivers and takes new ones after.
    own_first = case((PushEndpoint.lease_owner == owner, 0), else_=1)
    candidates = list(
        await session.scalars(
            select(PushEndpoint.id).where(free).order_by(own_first, PushEndpoint.id).limit(limit)
        )
    )
    held: list[int] = []
    if candidates:
        result = await session.execute(
            update(PushEndpoint)
            .where(PushEndpoint.id.in_(candidates), free)
            .values(lease_owner=owner, lease_until=until)
            .returning(PushEndpoint.id)
            .execution_options(synchronize_session=False)
        )
        held = sorted(result.scalars())
    # Beyond the limit (another process joined): let go at once, for it to take.
    shed = update(PushEndpoint).where(PushEndpoint.lease_owner == owner)
    if held:
        shed = shed.where(PushEndpoint.id.not_in(held))
    await session.execute(
        shed.values(lease_owner=None, lease_until=None).execution_options(
            synchronize_session=False
        )
    )
    return held


async def share(
    session: AsyncSession, owner: str, now: datetime, until: datetime, grace: float
) -> int:
    """Say that `owner` delivers until `until`, forget processes not seen for `grace`
    seconds past their time, and return this process's share of the enabled
    endpoints: all of them divided by the processes that deliver now, rounded up."""
    table = cast(Table, PushProcess.__table__)
    await session.execute(
        delete(table).where(table.c.seen_until < now - timedelta(seconds=grace))
    )
    moved = await session.execute(
        update(table).where(table.c.owner == owner).values(seen_until=until)
    )
    if moved.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(table.insert().values(owner=owner, seen_until=until))
    processes = await session.scalar(
        select(func.count()).select_from(table).where(table.c.seen_until >= now)
    )
    endpoints = await session.scalar(
        select(func.count()).select_from(PushEndpoint).where(PushEndpoint.enabled.is_(True))
    )
    return max(1, -(-int(endpoints or 0) // max(int(processes or 1), 1)))


async def gone(session: AsyncSession, owner: str) -> None:
    """The process stops delivering: the others' shares grow at their next round."""
    await session.execute(delete(PushProcess).where(PushProcess.owner == owner))


async def release(session: AsyncSession, owner: str, endpoint_ids: Iterable[int]) -> None:
    ids = list(endpoint_ids)
    if ids:
        await session.execute(
            update(PushEndpoint)
            .where(PushEndpoint.id.in_(ids), PushEndpoint.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


# --- what a delivering process writes ------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    event_id: int
    message_id: str
    status: int | None
    status_message: str | None
    http_status: int | None


@dataclass(frozen=True)
class Delivered:
    """One answered batch of one endpoint, to be recorded."""

    endpoint_id: int
    cursor: tuple[int, int]
    answers: Sequence[Answer]
    now: datetime
    pending_since: datetime | None


async def record_batches(
    session: AsyncSession,
    owner: str,
    batches: Sequence[Delivered],
    waiting: dict[int, datetime] | None = None,
) -> set[int]:
    """Answered batches of several endpoints, in one transaction and a fixed number
    of statements: store each answer, move each cursor, reset the retry state.
    `waiting` first: endpoints whose oldest undelivered event began to wait then
    (shown where nothing is shown yet; a batch of the same group overrides it).
    Returns the endpoints recorded; an endpoint whose lease `owner` no longer
    holds is left untouched. The rows are locked first (FOR UPDATE), so a lease
    cannot change hands between the check and the write."""
    waiting = waiting or {}
    ids = sorted({b.endpoint_id for b in batches} | set(waiting))
    if not ids:
        return set()
    held = set(
        await session.scalars(
            select(PushEndpoint.id)
            .where(PushEndpoint.id.in_(ids), PushEndpoint.lease_owner == owner)
            .with_for_update()
        )
    )
    table = cast(Table, PushEndpoint.__table__)
    marks = [{"b_id": key, "b_since": since} for key, since in waiting.items() if key in held]
    if marks:
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.pending_since.is_(None))
            .values(pending_since=bindparam("b_since")),
            marks,
        )
    mine = [b for b in batches if b.endpoint_id in held]
    if not mine:
        return held
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            cursor_tx=bindparam("b_tx"),
            cursor_id=bindparam("b_event"),
            failures=0,
            next_attempt_at=None,
            paused_until=None,
            last_success_at=bindparam("b_now"),
            pending_since=bindparam("b_pending"),
            delivered_events=table.c.delivered_events + bindparam("b_delivered"),
            refused_events=table.c.refused_events + bindparam("b_refused"),
            updated_at=bindparam("b_now"),
        ),
        [
            {
                "b_id": b.endpoint_id,
                "b_tx": b.cursor[0],
                "b_event": b.cursor[1],
                "b_now": b.now,
                "b_pending": b.pending_since,
                "b_delivered": len(b.answers),
                "b_refused": sum(1 for a in b.answers if a.status not in (0, None)),
            }
            for b in mine
        ],
    )
    rows = [
        {
            "endpoint_id": b.endpoint_id,
            "event_id": a.event_id,
            "message_id": a.message_id,
            "status": a.status,
            "status_message": a.status_message,
            "http_status": a.http_status,
            "answered_at": b.now,
        }
        for b in mine
        for a in b.answers
    ]
    if rows:
        insert = (
            postgresql.insert(PushAnswer)
            if session.bind is not None and session.bind.dialect.name == "postgresql"
            else sqlite.insert(PushAnswer)
        )
        # One cached statement, executed for many rows (insertmanyvalues batches them).
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[PushAnswer.endpoint_id, PushAnswer.event_id],
                set_={
                    "status": insert.excluded.status,
                    "status_message": insert.excluded.status_message,
                    "http_status": insert.excluded.http_status,
                    "answered_at": insert.excluded.answered_at,
                },
            ),
            rows,
        )
    return held


async def advance(
    session: AsyncSession,
    endpoint_id: int,
    owner: str,
    cursor: tuple[int, int],
    now: datetime,
) -> bool:
    """Nothing to send up to `cursor` (no event there is for this endpoint)."""
    moved = await session.execute(
        update(PushEndpoint)
        .where(PushEndpoint.id == endpoint_id, PushEndpoint.lease_owner == owner)
        .values(cursor_tx=cursor[0], cursor_id=cursor[1], pending_since=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined,no-any-return]


async def record_failure(
    session: AsyncSession,
    endpoint_id: int,
    owner: str,
    *,
    failures: int,
    next_attempt_at: datetime | None,
    paused_until: datetime | None,
    error: str,
    now: datetime,
    pending_since: datetime | None,
) -> bool:
    """The receiver was unavailable: the cursor stays, the schedule moves on."""
    moved = await session.execute(
        update(PushEndpoint)
        .where(PushEndpoint.id == endpoint_id, PushEndpoint.lease_owner == owner)
        .values(
            failures=failures,
            next_attempt_at=next_attempt_at,
            paused_until=paused_until,
            last_error_at=now,
            last_error=error[:1000],
            failed_attempts=PushEndpoint.failed_attempts + 1,
            pending_since=pending_since,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined,no-any-return]


# --- retention ---------------------------------------------------------------------------


async def delete_old_answers(session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete up to `limit` answers given before `before`, oldest first (by the
    index on `answered_at`); how many. The status keeps its counters."""
    keys = (
        select(PushAnswer.endpoint_id, PushAnswer.event_id)
        .where(PushAnswer.answered_at < before)
        .order_by(PushAnswer.answered_at)
        .limit(limit)
    )
    found = (await session.execute(keys)).all()
    if not found:
        return 0
    await session.execute(
        delete(PushAnswer)
        .where(tuple_(PushAnswer.endpoint_id, PushAnswer.event_id).in_([tuple(k) for k in found]))
        .execution_options(synchronize_session=False)
    )
    return len(found)


# --- catch-up ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartyTopic(Topic):
    """A topic narrowed in SQL to the events of the entitlements a supplier is a
    party to (seller, publisher or recipient): the only events it can ever be
    allowed to see, so a reader that judges each event (db/visibility.Facts.may_see)
    looks at those and no others. Each part goes by an index (delivery's seller,
    product's publisher, the recipient's supplier, the event's entitlement)."""

    party: int = 0

    def condition(self) -> Any:
        from db.models import Delivery, Entitlement, EntitlementRecipient, Event, Product

        sold = (
            select(Entitlement.id)
            .join(Delivery, Delivery.id == Entitlement.delivery_id)
            .where(Delivery.seller_id == self.party)
        )
        published = (
            select(Entitlement.id)
            .join(Product, Product.id == Entitlement.product_id)
            .where(Product.publisher_id == self.party)
        )
        received = select(EntitlementRecipient.entitlement_id).where(
            EntitlementRecipient.supplier_id == self.party
        )
        return [
            *super().condition(),
            or_(
                Event.entitlement_id.in_(sold),
                Event.entitlement_id.in_(published),
                Event.entitlement_id.in_(received),
            ),
        ]


async def position_before(session: AsyncSession, moment: datetime) -> tuple[int, int]:
    """The stream position just before the first event (in stream order) committed
    after `moment`: reading the stream from there (db/events.read) finds every
    event created after it. A transaction's events share its start time, so no
    event of the same transaction lies before that position."""
    from db.events import stable_head
    from db.models import Event

    statement = select(Event.tx_id, Event.id).where(Event.occurred_at > moment).limit(1)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        statement = statement.order_by(Event.tx_id, Event.id)
    else:
        statement = statement.order_by(Event.id)
    found = (await session.execute(statement)).first()
    if found is None:
        return await stable_head(session)
    return (found[0], found[1] - 1)


# --- what envelopes need ---------------------------------------------------------------------


@dataclass
class Lookups:
    """What envelopes need beyond the event's facts (db/events.Facts): product
    codes, schools' RIO ids and pupils' ECK iDs, loaded once per batch."""

    products: dict[int, str] = field(default_factory=dict)
    schools: dict[int, str] = field(default_factory=dict)
    eck_ids: dict[int, str] = field(default_factory=dict)


async def load_lookups(
    session: AsyncSession, entitlements: Iterable[Any], licences: Iterable[Any]
) -> Lookups:
    from db.models import Organisation, PersonIdentifier, Product

    entitlements = list(entitlements)
    product_ids = sorted({e.product_id for e in entitlements})
    school_ids = sorted({e.school_id for e in entitlements if e.school_id is not None})
    person_ids = sorted({x.person_id for x in licences if x.person_id is not None})
    found = Lookups()
    if product_ids:
        found.products = dict(
            (
                await session.execute(
                    select(Product.id, Product.code).where(Product.id.in_(product_ids))
                )
            ).all()
        )
    if school_ids:
        found.schools = dict(
            (
                await session.execute(
                    select(Organisation.id, Organisation.rio_id).where(
                        Organisation.id.in_(school_ids)
                    )
                )
            ).all()
        )
    if person_ids:
        found.eck_ids = dict(
            (
                await session.execute(
                    select(PersonIdentifier.person_id, PersonIdentifier.value).where(
                        PersonIdentifier.person_id.in_(person_ids),
                        PersonIdentifier.scheme == PersonIdScheme.ECK_ID.value,
                    )
                )
            ).all()
        )
    return found


# --- seeds -------------------------------------------------------------------------------


async def add_seed(
    session: AsyncSession, endpoint_id: int, school_id: int, requested_by: str | None
) -> PushSeed:
    row = PushSeed(endpoint_id=endpoint_id, school_id=school_id, requested_by=requested_by)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def seeds_of(session: AsyncSession, endpoint_id: int) -> list[PushSeed]:
    rows = await session.scalars(
        select(PushSeed).where(PushSeed.endpoint_id == endpoint_id).order_by(PushSeed.id.desc())
    )
    return list(rows)


async def with_open_seeds(session: AsyncSession, endpoint_ids: Sequence[int]) -> set[int]:
    """Which of these endpoints have a seed waiting (one statement)."""
    if not endpoint_ids:
        return set()
    rows = await session.scalars(
        select(PushSeed.endpoint_id)
        .where(PushSeed.endpoint_id.in_(list(endpoint_ids)), PushSeed.done_at.is_(None))
        .distinct()
    )
    return set(rows)


async def open_seeds(session: AsyncSession, endpoint_id: int) -> list[PushSeed]:
    rows = await session.scalars(
        select(PushSeed)
        .where(PushSeed.endpoint_id == endpoint_id, PushSeed.done_at.is_(None))
        .order_by(PushSeed.id)
    )
    return list(rows)


async def seed_done(
    session: AsyncSession, seed_id: int, endpoint_id: int, owner: str, sent: int, now: datetime
) -> bool:
    held = await session.scalar(
        select(PushEndpoint.id).where(
            PushEndpoint.id == endpoint_id, PushEndpoint.lease_owner == owner
        )
    )
    if held is None:
        return False
    await session.execute(
        update(PushSeed)
        .where(PushSeed.id == seed_id)
        .values(done_at=now, sent=sent)
        .execution_options(synchronize_session=False)
    )
    return True
