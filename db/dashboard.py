"""Dashboards (seed 004, steps 4, 8 and 12): one overview of a school's deliveries
across all shops, and the same for a board, a shop, a product or a school period.

Every figure is one SQL statement that groups in the database. Entitlement figures
read `entitlement_summary` and the activation curve reads `licence_day_summary`,
which triggers keep in the transaction of every change (migration 0004), so a
board with a million entitlements is a few thousand summary rows. Failures and
unanswered deliveries read the few recipient rows that are not confirmed (a
partial index holds only those).

ENDED is derived here as everywhere (`domain.entitlements.effective_status`): a
stored status other than CANCELLED or BLOCKED whose activation period has passed.

Who may see which school's figures is decided once, by `school_consent`, from the
same SQL rule as every other read (`db.access.consented`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, false, func, literal, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import Scope, consented
from db.bulk import one_of
from db.models import (
    DataExchange,
    Delivery,
    Entitlement,
    EntitlementRecipient,
    EntitlementSummary,
    LicenceDaySummary,
    Organisation,
    SchoolPeriod,
)
from domain.consent import Access
from domain.entitlements import EntitlementStatus, RecipientRole, RecipientState
from domain.roles import DataType, Role

#: The longest date range a dashboard may ask for at once.
MAX_RANGE_DAYS = 366

#: Roles that read a school's figures by the school's consent (the operator reads all;
#: a shop reads its own deliveries instead, see `Slice.seller_id`).
READERS = frozenset({Role.OPERATOR, Role.SCHOOL, Role.DASHBOARD})


# --- who may see which school ----------------------------------------------------------


@dataclass(frozen=True)
class SchoolConsent:
    """May the caller see this school's entitlement figures, and its licence figures?"""

    school_id: int
    entitlements: Access
    activations: Access

    @property
    def missing(self) -> list[DataType]:
        return [
            data_type
            for data_type, access in (
                (DataType.ENTITLEMENTS, self.entitlements),
                (DataType.ACTIVATIONS, self.activations),
            )
            if access is not Access.ALLOWED
        ]


def _reads(scope: Scope, data_type: DataType) -> Any:
    """SQL on `Organisation.id`: the caller may see this school's `data_type` in
    aggregate. A dashboard by the school's activation and mandate, a school
    administrator for its own school, the operator for all."""
    if Role.OPERATOR in scope.roles:
        return true()
    conditions = []
    if Role.DASHBOARD in scope.roles:
        conditions.append(consented(Organisation.id, scope, Role.DASHBOARD, data_type))
    if Role.SCHOOL in scope.roles and scope.school_id is not None:
        conditions.append(Organisation.id == scope.school_id)
    return or_(false(), *conditions)


def _refusal(scope: Scope) -> Access:
    # A dashboard is told to ask the school; a school administrator asking about
    # another school is simply not involved.
    return Access.CONSENT_REQUIRED if Role.DASHBOARD in scope.roles else Access.NOT_INVOLVED


async def school_consent(
    session: AsyncSession, scope: Scope, school_ids: Sequence[int]
) -> dict[int, SchoolConsent]:
    """The decision for each school, for ENTITLEMENTS and ACTIVATIONS, in one
    statement (a board of a hundred schools is not two hundred round trips)."""
    if not school_ids:
        return {}
    rows = await session.execute(
        select(
            Organisation.id,
            _reads(scope, DataType.ENTITLEMENTS),
            _reads(scope, DataType.ACTIVATIONS),
        ).where(one_of(session, Organisation.id, list(school_ids), integer=True))
    )
    refused = _refusal(scope)
    return {
        school_id: SchoolConsent(
            school_id,
            Access.ALLOWED if entitlements else refused,
            Access.ALLOWED if activations else refused,
        )
        for school_id, entitlements, activations in rows
    }


async def consenting_schools(session: AsyncSession, scope: Scope) -> list[int]:
    """Every school that activated ENTITLEMENTS for this dashboard (with a valid
    mandate), for a dashboard that names no school or board."""
    statement = (
        select(DataExchange.school_id)
        .where(
            DataExchange.supplier_id == scope.supplier_id,
            DataExchange.role == Role.DASHBOARD.value,
            DataExchange.data_type == DataType.ENTITLEMENTS.value,
            DataExchange.revoked_at.is_(None),
            consented(DataExchange.school_id, scope, Role.DASHBOARD, DataType.ENTITLEMENTS),
        )
        .distinct()
        .order_by(DataExchange.school_id)
    )
    return list(await session.scalars(statement))


# --- what the figures are about ------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """The entitlements (and licences) a figure counts. `school_ids` None means every
    school (the operator, or a shop on its own deliveries); an empty list, none.
    A date range selects the entitlements whose activation period overlaps it, and
    for the activation curve the days themselves."""

    school_ids: tuple[int, ...] | None = None
    product_id: int | None = None
    seller_id: int | None = None
    from_date: date | None = None
    until_date: date | None = None

    def only(self, school_ids: Sequence[int] | None) -> Slice:
        from dataclasses import replace

        return replace(self, school_ids=None if school_ids is None else tuple(school_ids))


def _school_in(session: AsyncSession, column: Any, piece: Slice) -> Any:
    if piece.school_ids is None:
        return true()
    if not piece.school_ids:
        return false()
    return one_of(session, column, list(piece.school_ids), integer=True)


def _summary_where(session: AsyncSession, piece: Slice) -> list[Any]:
    s = EntitlementSummary
    where = [_school_in(session, s.school_id, piece)]
    if piece.product_id is not None:
        where.append(s.product_id == piece.product_id)
    if piece.seller_id is not None:
        where.append(s.seller_id == piece.seller_id)
    if piece.from_date is not None and piece.until_date is not None:
        where += [s.start_date <= piece.until_date, s.activation_until_date >= piece.from_date]
    return where


def _entitlement_where(session: AsyncSession, piece: Slice) -> list[Any]:
    e = Entitlement
    where = [_school_in(session, e.school_id, piece)]
    if piece.product_id is not None:
        where.append(e.product_id == piece.product_id)
    if piece.seller_id is not None:
        where.append(Delivery.seller_id == piece.seller_id)
    if piece.from_date is not None and piece.until_date is not None:
        where += [e.start_date <= piece.until_date, e.activation_until_date >= piece.from_date]
    return where


def effective_status(status: Any, activation_until_date: Any, today: date) -> Any:
    """SQL twin of `domain.entitlements.effective_status`."""
    kept = [EntitlementStatus.CANCELLED.value, EntitlementStatus.BLOCKED.value]
    return case(
        (status.in_(kept), status),
        (activation_until_date < today, literal(EntitlementStatus.ENDED.value)),
        else_=status,
    )


def day_of(session: AsyncSession, moment: Any) -> Any:
    """The calendar day of a timestamp: in Europe/Amsterdam on PostgreSQL (the
    chain's calendar, `resolvers.clock`); SQLite has no time zones and stores what
    it was given, so there it is the stored date (UTC for database defaults)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return func.date(func.timezone("Europe/Amsterdam", moment))
    return func.date(moment)


# --- the aggregates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCount:
    status: EntitlementStatus
    entitlements: int
    open_entitlements: int
    quantity: int


async def status_counts(session: AsyncSession, piece: Slice, today: date) -> list[StatusCount]:
    """Entitlements per (effective) status, with the licences bought on them."""
    s = EntitlementSummary
    rows = (
        select(
            effective_status(s.status, s.activation_until_date, today).label("status"),
            s.entitlements,
            s.open_entitlements,
            s.quantity,
        )
        .where(*_summary_where(session, piece))
        .subquery()
    )
    result = await session.execute(
        select(
            rows.c.status,
            func.sum(rows.c.entitlements),
            func.sum(rows.c.open_entitlements),
            func.sum(rows.c.quantity),
        )
        .group_by(rows.c.status)
        .having(func.sum(rows.c.entitlements) > 0)
        .order_by(rows.c.status)
    )
    return [
        StatusCount(EntitlementStatus(status), int(n), int(n_open or 0), int(quantity or 0))
        for status, n, n_open, quantity in result
    ]


@dataclass(frozen=True)
class LicenceTotals:
    entitlements: int
    open_entitlements: int
    quantity_bought: int
    licences_activated: int
    licences_activated_open: int


async def licence_totals(session: AsyncSession, piece: Slice) -> LicenceTotals:
    """Licences activated against licences bought, from the entitlements' counters."""
    s = EntitlementSummary
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(s.entitlements), 0),
                func.coalesce(func.sum(s.open_entitlements), 0),
                func.coalesce(func.sum(s.quantity), 0),
                func.coalesce(func.sum(s.licences_used), 0),
                func.coalesce(func.sum(s.licences_used_open), 0),
            ).where(*_summary_where(session, piece))
        )
    ).one()
    return LicenceTotals(*(int(value) for value in row))


@dataclass(frozen=True)
class ActivationDay:
    day: date
    activations: int
    cumulative: int
    cumulative_open: int
    quantity_bought: int


async def activations_per_day(
    session: AsyncSession, piece: Slice, from_date: date, until_date: date
) -> list[ActivationDay]:
    """Licences activated per day in [from_date, until_date] (days without any are
    left out), with the running total since the first activation ever (so a curve
    that starts mid-year starts at the right height) and the licences bought on the
    open entitlements of the slice, for the activation rate."""
    d = LicenceDaySummary
    where = [_school_in(session, d.school_id, piece)]
    if piece.product_id is not None:
        where.append(d.product_id == piece.product_id)
    if piece.seller_id is not None:
        where.append(d.seller_id == piece.seller_id)
    before = (
        select(
            func.coalesce(func.sum(d.activations), 0).label("activations"),
            func.coalesce(func.sum(d.activations_open), 0).label("activations_open"),
        )
        .where(*where, d.day < from_date)
        .subquery()
    )
    bought = (
        select(func.coalesce(func.sum(EntitlementSummary.quantity), 0))
        .where(*_summary_where(session, piece))
        .scalar_subquery()
    )
    per_day = (
        select(
            d.day.label("day"),
            func.sum(d.activations).label("activations"),
            func.sum(d.activations_open).label("activations_open"),
        )
        .where(*where, d.day >= from_date, d.day <= until_date)
        .group_by(d.day)
        .subquery()
    )
    running = func.sum(per_day.c.activations).over(order_by=per_day.c.day)
    running_open = func.sum(per_day.c.activations_open).over(order_by=per_day.c.day)
    result = await session.execute(
        select(
            per_day.c.day,
            per_day.c.activations,
            running + before.c.activations,
            running_open + before.c.activations_open,
            bought,
        )
        .select_from(per_day.join(before, true()))
        .order_by(per_day.c.day)
    )
    return [
        ActivationDay(
            day=day if isinstance(day, date) else date.fromisoformat(str(day)),
            activations=int(n),
            cumulative=int(total),
            cumulative_open=int(total_open),
            quantity_bought=int(quantity),
        )
        for day, n, total, total_open, quantity in result
    ]


@dataclass(frozen=True)
class FailureCount:
    code: int
    role: RecipientRole
    supplier_id: int
    entitlements: int
    last_reported_at: datetime


def _unanswered() -> Any:
    """The partial index's predicate (`db.models.UNANSWERED`) with literal values, so
    both databases can prove the index applies (a bound parameter would not do)."""
    return text(
        "entitlement_recipient.state IN ('PENDING', 'FAILED') "
        "AND entitlement_recipient.role IN ('LICENSOR', 'PORTAL')"
    )


async def failures(session: AsyncSession, piece: Slice) -> list[FailureCount]:
    """Entitlements a recipient failed on, per status code and recipient."""
    r, e = EntitlementRecipient, Entitlement
    statement = (
        select(
            r.failure_code,
            r.role,
            r.supplier_id,
            func.count(),
            func.max(r.updated_at),
        )
        .join(e, e.id == r.entitlement_id)
        .where(_unanswered(), r.state == RecipientState.FAILED.value)
        .where(*_entitlement_where(session, piece))
        .group_by(r.failure_code, r.role, r.supplier_id)
        .order_by(func.count().desc(), r.failure_code, r.role, r.supplier_id)
    )
    if piece.seller_id is not None:
        statement = statement.join(Delivery, Delivery.id == e.delivery_id)
    rows = await session.execute(statement)
    return [
        FailureCount(int(code or 0), RecipientRole(role), supplier_id, int(n), last)
        for code, role, supplier_id, n, last in rows
    ]


@dataclass(frozen=True)
class StuckDelivery:
    delivery_id: int
    entitlements: int
    pending_at_licensor: int
    pending_at_portal: int
    pending_since: datetime


async def stuck_deliveries(
    session: AsyncSession, piece: Slice, before: datetime, first: int
) -> tuple[int, list[StuckDelivery]]:
    """Deliveries with entitlements a licence office or portal has not confirmed (nor
    failed) since before `before`: the total, and the `first` that wait longest."""
    r, e = EntitlementRecipient, Entitlement
    pending = func.min(r.updated_at)
    statement = (
        select(
            e.delivery_id,
            func.count(func.distinct(e.id)),
            func.sum(case((r.role == RecipientRole.LICENSOR.value, 1), else_=0)),
            func.sum(case((r.role == RecipientRole.PORTAL.value, 1), else_=0)),
            pending,
            func.count().over(),
        )
        .join(e, e.id == r.entitlement_id)
        .where(
            _unanswered(),
            r.state == RecipientState.PENDING.value,
            r.updated_at < before,
        )
        .where(*_entitlement_where(session, piece))
        .group_by(e.delivery_id)
        .order_by(pending, e.delivery_id)
        .limit(first)
    )
    if piece.seller_id is not None:
        statement = statement.join(Delivery, Delivery.id == e.delivery_id)
    rows = (await session.execute(statement)).all()
    total = int(rows[0][5]) if rows else 0
    return total, [
        StuckDelivery(delivery_id, int(n), int(licensor), int(portal), since)
        for delivery_id, n, licensor, portal, since, _total in rows
    ]


# --- what a name means --------------------------------------------------------------------------


async def period_range(
    session: AsyncSession, school_ids: Sequence[int], code: str
) -> tuple[date, date] | None:
    """The days a school period (by its code) covers at these schools; for a board,
    from the earliest start to the latest end among its schools' periods."""
    row = (
        await session.execute(
            select(func.min(SchoolPeriod.start_date), func.max(SchoolPeriod.end_date)).where(
                one_of(session, SchoolPeriod.school_id, list(school_ids), integer=True),
                SchoolPeriod.code == code,
            )
        )
    ).one()
    if row[0] is None:
        return None
    start, end = (v if isinstance(v, date) else date.fromisoformat(str(v)) for v in row)
    return start, end
