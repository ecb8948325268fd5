"""Dashboards (seed 004, steps 4, 8 and 12): one overview of a school's deliveries
across all shops, and the same for a board, a shop, a product or a school period.
One module (about 820 lines): `compiler/dashboard.py` builds its compiled reads from
these same statement builders, so each figure's SQL has one source.

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
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    Date,
    DateTime,
    Integer,
    String,
    any_,
    bindparam,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import consented
from db.models import (
    DataExchange,
    Delivery,
    Entitlement,
    EntitlementDelta,
    EntitlementRecipient,
    EntitlementSummary,
    Licence,
    LicenceDaySummary,
    LicenceDelta,
    Organisation,
    OrganisationIdentifier,
    OrganisationRelation,
    SchoolDaySummary,
    SchoolPeriod,
    SchoolSummary,
)
from domain.consent import Access
from domain.entitlements import EntitlementStatus, RecipientRole, RecipientState
from domain.identifiers import OrgLevel
from domain.roles import DataType, Principal, Role

#: The longest date range a dashboard may ask for at once.
MAX_RANGE_DAYS = 366

#: Roles that read a school's figures by the school's consent (the operator reads all;
#: a shop reads its own deliveries instead, see `Slice.seller_id`).
READERS = frozenset({Role.OPERATOR, Role.SCHOOL, Role.DASHBOARD})


# --- running a statement --------------------------------------------------------------------

_POSTGRES = PGDialect_asyncpg()


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]


_compiled: dict[Any, _Compiled] = {}


async def _fetch(session: AsyncSession, statement: Any, params: dict[str, Any]) -> list[Any]:
    """Run one of this module's statements (built once per shape). On PostgreSQL its
    SQL is rendered once and sent straight to asyncpg, which prepares it once per
    connection: no statement building, compiling or result processing per request
    (half of a board summary's Python time went there). The statement events still
    fire, so statement counters and captures see it like any other."""
    if _dialect(session) != "postgresql":
        return list((await session.execute(statement, params)).all())
    found = _compiled.get(statement)
    if found is None:
        compiled = statement.compile(dialect=_POSTGRES)
        found = _Compiled(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))
        _compiled[statement] = found
    args = tuple(params[n] if n in params else found.defaults[n] for n in found.names)
    connection = await session.connection()
    sync = connection.sync_connection
    if sync is not None and sync.dispatch.before_cursor_execute:
        sync.dispatch.before_cursor_execute(sync, None, found.sql, args, None, False)
    raw = (await connection.get_raw_connection()).driver_connection
    return list(await raw.fetch(found.sql, *args))  # type: ignore[union-attr]


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


def _reads(caller: Principal, today: date, data_type: DataType) -> Any:
    """SQL on `Organisation.id`: the caller may see this school's `data_type` in
    aggregate. A dashboard by the school's activation and mandate, a school
    administrator for its own school, the operator for all."""
    if Role.OPERATOR in caller.roles:
        return true()
    conditions = []
    if Role.DASHBOARD in caller.roles:
        conditions.append(consented(Organisation.id, caller, today, Role.DASHBOARD, data_type))
    if Role.SCHOOL in caller.roles and caller.school_id is not None:
        conditions.append(Organisation.id == caller.school_id)
    return or_(false(), *conditions)


def _refusal(caller: Principal) -> Access:
    # A dashboard is told to ask the school; a school administrator asking about
    # another school is simply not involved.
    return Access.CONSENT_REQUIRED if Role.DASHBOARD in caller.roles else Access.NOT_INVOLVED


def _scope_key(caller: Principal) -> tuple[bool, bool, bool]:
    return (
        Role.OPERATOR in caller.roles,
        Role.DASHBOARD in caller.roles,
        Role.SCHOOL in caller.roles and caller.school_id is not None,
    )


def _scope_params(caller: Principal, today: date) -> dict[str, Any]:
    return {"supplier_id": caller.supplier_id, "own_school": caller.school_id, "today": today}


@lru_cache(maxsize=64)
def _consent_columns(key: tuple[bool, bool, bool]) -> tuple[Any, Any]:
    """The two consent conditions for callers of this kind, with the caller's
    supplier, school and day as parameters: built once, not per request."""
    operator, dashboard, school = key
    roles = {
        role
        for role, present in ((Role.OPERATOR, operator), (Role.DASHBOARD, dashboard))
        if present
    }
    if school:
        roles.add(Role.SCHOOL)
    caller = Principal(
        bindparam("supplier_id", type_=Integer()),  # type: ignore[arg-type]
        frozenset(roles),
        bindparam("own_school", type_=Integer()) if school else None,  # type: ignore[arg-type]
    )
    today = bindparam("today", type_=Date())
    return (
        _reads(caller, today, DataType.ENTITLEMENTS).label("entitlements"),  # type: ignore[arg-type]
        _reads(caller, today, DataType.ACTIVATIONS).label("activations"),  # type: ignore[arg-type]
    )


def _decided(caller: Principal, rows: Any) -> dict[int, SchoolConsent]:
    refused = _refusal(caller)
    return {
        school_id: SchoolConsent(
            school_id,
            Access.ALLOWED if entitlements else refused,
            Access.ALLOWED if activations else refused,
        )
        for school_id, entitlements, activations in rows
    }


@lru_cache(maxsize=64)
def _school_consent_statement(dialect: str, key: tuple[bool, bool, bool]) -> Any:
    entitlements, activations = _consent_columns(key)
    return select(Organisation.id, entitlements, activations).where(
        _in_schools(dialect, Organisation.id)
    )


async def school_consent(
    session: AsyncSession, caller: Principal, today: date, school_ids: Sequence[int]
) -> dict[int, SchoolConsent]:
    """The decision for each school, for ENTITLEMENTS and ACTIVATIONS, in one
    statement (a board of a hundred schools is not two hundred round trips)."""
    if not school_ids:
        return {}
    statement = _school_consent_statement(_dialect(session), _scope_key(caller))
    params = {**_scope_params(caller, today), "schools": list(school_ids)}
    return _decided(caller, await _fetch(session, statement, params))


@dataclass(frozen=True)
class School:
    """A school as a dashboard names it (the columns `schema.types.Organisation`
    is built from)."""

    id: int
    level: str
    rio_id: str
    name: str


@lru_cache(maxsize=8)
def _named_statement(level: OrgLevel) -> Any:
    o, i = Organisation, OrganisationIdentifier
    value = bindparam("value", type_=String())
    return (
        select(o.id, o.level, o.rio_id, o.name)
        .where(
            or_(o.rio_id == value, o.id.in_(select(i.organisation_id).where(i.value == value))),
            o.level == literal_column(f"'{level.value}'"),
        )
        .order_by(o.id)
        .limit(2)
    )


async def named(session: AsyncSession, value: str, level: OrgLevel) -> School | None:
    """The one organisation at `level` that `value` (any RIO identifier, exactly as
    given) names; None when none or several do (`resolvers.lookup` then explains)."""
    rows = await _fetch(session, _named_statement(level), {"value": value})
    return School(*rows[0]) if len(rows) == 1 else None


@lru_cache(maxsize=64)
def _board_statement(key: tuple[bool, bool, bool]) -> Any:
    entitlements, activations = _consent_columns(key)
    o = Organisation
    return (
        select(o.id, o.level, o.rio_id, o.name, entitlements, activations)
        .join(OrganisationRelation, OrganisationRelation.child_id == o.id)
        .where(
            OrganisationRelation.parent_id == bindparam("board", type_=Integer()),
            o.level == literal_column(f"'{OrgLevel.PROVIDER.value}'"),
        )
        .order_by(o.rio_id)
    )


async def board_schools(
    session: AsyncSession, caller: Principal, today: date, board_id: int
) -> tuple[list[School], dict[int, SchoolConsent]]:
    """A board's schools and the decision for each, in one statement."""
    params = {**_scope_params(caller, today), "board": board_id}
    rows = await _fetch(session, _board_statement(_scope_key(caller)), params)
    return (
        [School(*row[:4]) for row in rows],
        _decided(caller, [(row[0], row[4], row[5]) for row in rows]),
    )


def consenting_statement(caller: Principal, today: date) -> Any:
    """Every school that activated ENTITLEMENTS for this dashboard (with a valid
    mandate), for a dashboard that names no school or board (the compiled read
    embeds this statement with the plan's caller and day)."""
    return (
        select(DataExchange.school_id)
        .where(
            DataExchange.supplier_id == caller.supplier_id,
            DataExchange.role == Role.DASHBOARD.value,
            DataExchange.data_type == DataType.ENTITLEMENTS.value,
            DataExchange.revoked_at.is_(None),
            consented(DataExchange.school_id, caller, today, Role.DASHBOARD, DataType.ENTITLEMENTS),
        )
        .distinct()
        .order_by(DataExchange.school_id)
    )


async def consenting_schools(session: AsyncSession, caller: Principal, today: date) -> list[int]:
    """`consenting_statement`'s schools."""
    return list(await session.scalars(consenting_statement(caller, today)))


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

    @property
    def shape(self) -> Shape:
        schools = "all" if self.school_ids is None else ("some" if self.school_ids else "none")
        return Shape(
            schools,
            self.product_id is not None,
            self.seller_id is not None,
            self.from_date is not None and self.until_date is not None,
        )

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "schools": list(self.school_ids or ()),
            "product_id": self.product_id,
            "seller_id": self.seller_id,
            "from_date": self.from_date,
            "until_date": self.until_date,
            **extra,
        }


class Shape(NamedTuple):
    """Which filters a slice uses: statements are built (and compiled) once per shape,
    the values are parameters."""

    schools: str  # "all", "some" or "none"
    product: bool
    seller: bool
    dates: bool

    @property
    def fine(self) -> bool:
        """Needs the per-product summaries (else the per-school ones do)."""
        return self.product or self.seller or self.dates


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


_INTEGERS = ARRAY(Integer())


def _in_schools(dialect: str, column: Any) -> Any:
    """`column IN :schools`: one array parameter on PostgreSQL, an expanding list on
    SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam("schools", type_=_INTEGERS))
    return column.in_(bindparam("schools", expanding=True))


def _school_filter(dialect: str, shape: Shape, column: Any) -> Any:
    if shape.schools == "all":
        return true()
    if shape.schools == "none":
        return false()
    return _in_schools(dialect, column)


def _entitlement_where(dialect: str, shape: Shape, e: Any = Entitlement) -> list[Any]:
    """A slice of this shape as conditions on `e` (the entitlement table, a summary or
    the deltas; a shop condition needs `Delivery` joined, except on the summary)."""
    where = [_school_filter(dialect, shape, e.school_id)]
    if shape.product:
        where.append(e.product_id == bindparam("product_id", type_=Integer()))
    if shape.seller:
        seller = e.seller_id if e is EntitlementSummary else Delivery.seller_id
        where.append(seller == bindparam("seller_id", type_=Integer()))
    if shape.dates:
        where += [
            e.start_date <= bindparam("until_date", type_=Date()),
            e.activation_until_date >= bindparam("from_date", type_=Date()),
        ]
    return where


def effective_status(status: Any, activation_until_date: Any, today: Any) -> Any:
    """SQL twin of `domain.entitlements.effective_status` (the constants written into
    the SQL text, so a compiled statement has only the caller's values as parameters)."""
    kept = [EntitlementStatus.CANCELLED, EntitlementStatus.BLOCKED]
    return case(
        (status.in_([literal_column(f"'{k.value}'") for k in kept]), status),
        (activation_until_date < today, literal_column(f"'{EntitlementStatus.ENDED.value}'")),
        else_=status,
    )


def day_of(session: AsyncSession, moment: Any) -> Any:
    """The calendar day of a timestamp: in Europe/Amsterdam on PostgreSQL (the
    chain's calendar, `resolvers.clock`); SQLite has no time zones and stores what
    it was given, so there it is the stored date (UTC for database defaults)."""
    if _dialect(session) == "postgresql":
        # A literal zone, so the expression is the same text in SELECT and GROUP BY.
        return func.date(func.timezone(literal_column("'Europe/Amsterdam'"), moment))
    return func.date(moment)


_COUNTERS = ("entitlements", "open_entitlements", "quantity", "licences_used", "licences_used_open")


def _entitlement_rows(dialect: str, shape: Shape) -> Any:
    """The summarised entitlements of a slice, as (status, counters…) rows: the
    per-school summary when only schools are asked for, the finer one when a
    product, shop or date range is, plus the differences not folded in yet."""
    summary: Any = EntitlementSummary if shape.fine else SchoolSummary
    d = EntitlementDelta
    today = bindparam("today", type_=Date())

    def rows(table: Any, where: list[Any]) -> Any:
        return select(
            effective_status(table.status, table.activation_until_date, today).label("status"),
            *(getattr(table, c).label(c) for c in _COUNTERS),
        ).where(*where)

    if shape.fine:
        kept = rows(summary, _entitlement_where(dialect, shape, summary))
        pending = rows(d, _entitlement_where(dialect, shape, d))
        if shape.seller:
            pending = pending.join(Delivery, Delivery.id == d.delivery_id)
    else:
        kept = rows(summary, [_school_filter(dialect, shape, summary.school_id)])
        pending = rows(d, [_school_filter(dialect, shape, d.school_id)])
    return union_all(kept, pending).subquery()


# --- the aggregates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCount:
    status: EntitlementStatus
    entitlements: int
    open_entitlements: int
    quantity: int


@lru_cache(maxsize=128)
def _status_statement(dialect: str, shape: Shape) -> Any:
    rows = _entitlement_rows(dialect, shape)
    return (
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


async def status_counts(session: AsyncSession, piece: Slice, today: date) -> list[StatusCount]:
    """Entitlements per (effective) status, with the licences bought on them."""
    result = await _fetch(
        session, _status_statement(_dialect(session), piece.shape), piece.params(today=today)
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


@lru_cache(maxsize=128)
def _totals_statement(dialect: str, shape: Shape) -> Any:
    rows = _entitlement_rows(dialect, shape)
    return select(*(func.coalesce(func.sum(getattr(rows.c, c)), 0) for c in _COUNTERS))


async def licence_totals(session: AsyncSession, piece: Slice, today: date) -> LicenceTotals:
    """Licences activated against licences bought, from the entitlements' counters."""
    (row,) = await _fetch(
        session, _totals_statement(_dialect(session), piece.shape), piece.params(today=today)
    )
    return LicenceTotals(*(int(value) for value in row))


@dataclass(frozen=True)
class ActivationDay:
    day: date
    activations: int
    cumulative: int
    cumulative_open: int
    quantity_bought: int


def _activation_rows(dialect: str, shape: Shape) -> Any:
    """(day, activations, activations_open) rows of a slice's schools (and product,
    shop), summarised per day, plus the activations not folded in yet."""
    d, e = LicenceDelta, Entitlement
    fine = shape.product or shape.seller
    s: Any = LicenceDaySummary if fine else SchoolDaySummary
    where = [_school_filter(dialect, shape, s.school_id)]
    if shape.product:
        where.append(s.product_id == bindparam("product_id", type_=Integer()))
    if shape.seller:
        where.append(s.seller_id == bindparam("seller_id", type_=Integer()))
    kept = select(
        s.day.label("day"),
        s.activations.label("activations"),
        s.activations_open.label("activations_open"),
    ).where(*where)
    pending = (
        select(
            d.day.label("day"),
            d.activations.label("activations"),
            case((e.quantity.is_(None), 0), else_=d.activations).label("activations_open"),
        )
        .join(e, e.id == d.entitlement_id)
        .where(_school_filter(dialect, shape, d.school_id))
    )
    if shape.product:
        pending = pending.where(d.product_id == bindparam("product_id", type_=Integer()))
    if shape.seller:
        pending = pending.join(Delivery, Delivery.id == e.delivery_id).where(
            Delivery.seller_id == bindparam("seller_id", type_=Integer())
        )
    return union_all(kept, pending).subquery()


@lru_cache(maxsize=128)
def _curve_statement(dialect: str, shape: Shape) -> Any:
    rows = _activation_rows(dialect, shape)
    first, last = bindparam("first_day", type_=Date()), bindparam("last_day", type_=Date())
    before = (
        select(
            func.coalesce(func.sum(rows.c.activations), 0).label("activations"),
            func.coalesce(func.sum(rows.c.activations_open), 0).label("activations_open"),
        )
        .where(rows.c.day < first)
        .subquery()
    )
    bought_rows = _entitlement_rows(dialect, shape)
    bought = select(func.coalesce(func.sum(bought_rows.c.quantity), 0)).scalar_subquery()
    per_day = (
        select(
            rows.c.day.label("day"),
            func.sum(rows.c.activations).label("activations"),
            func.sum(rows.c.activations_open).label("activations_open"),
        )
        .where(rows.c.day >= first, rows.c.day <= last)
        .group_by(rows.c.day)
        .having(func.sum(rows.c.activations) != 0)
        .subquery()
    )
    running = func.sum(per_day.c.activations).over(order_by=per_day.c.day)
    running_open = func.sum(per_day.c.activations_open).over(order_by=per_day.c.day)
    return (
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


async def activations_per_day(
    session: AsyncSession, piece: Slice, from_date: date, until_date: date, today: date
) -> list[ActivationDay]:
    """Licences activated per day in [from_date, until_date] (days without any are
    left out), with the running total since the first activation ever (so a curve
    that starts mid-year starts at the right height) and the licences bought on the
    open entitlements of the slice, for the activation rate."""
    result = await _fetch(
        session,
        _curve_statement(_dialect(session), piece.shape),
        piece.params(today=today, first_day=from_date, last_day=until_date),
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


@lru_cache(maxsize=64)
def _failures_statement(dialect: str, shape: Shape) -> Any:
    """(code, role, supplier_id, entitlements, last reported) per status code and
    recipient of a slice's failed entitlements, most frequent first."""
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
        .where(_unanswered(), r.state == literal_column(f"'{RecipientState.FAILED.value}'"))
        .where(*_entitlement_where(dialect, shape))
        .group_by(r.failure_code, r.role, r.supplier_id)
        .order_by(func.count().desc(), r.failure_code, r.role, r.supplier_id)
    )
    if shape.seller:
        statement = statement.join(Delivery, Delivery.id == e.delivery_id)
    return statement


async def failures(session: AsyncSession, piece: Slice) -> list[FailureCount]:
    """Entitlements a recipient failed on, per status code and recipient."""
    statement = _failures_statement(_dialect(session), piece.shape)
    rows = await session.execute(statement, piece.params())
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


@lru_cache(maxsize=64)
def _stuck_statement(dialect: str, shape: Shape) -> Any:
    """(delivery, entitlements, pending at the licence office, pending at a portal,
    pending since, total) of a slice's deliveries with entitlements a licence office
    or portal has not confirmed (nor failed) since before `:before`, the `:first`
    that wait longest; `total` counts them all."""
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
            r.updated_at < bindparam("before", type_=DateTime(timezone=True)),
        )
        .where(*_entitlement_where(dialect, shape))
        .group_by(e.delivery_id)
        .order_by(pending, e.delivery_id)
        .limit(bindparam("first", type_=Integer()))
    )
    if shape.seller:
        statement = statement.join(Delivery, Delivery.id == e.delivery_id)
    return statement


async def stuck_deliveries(
    session: AsyncSession, piece: Slice, before: datetime, first: int
) -> tuple[int, list[StuckDelivery]]:
    """`_stuck_statement`'s deliveries: the total, and the `first` that wait longest."""
    statement = _stuck_statement(_dialect(session), piece.shape)
    rows = (await session.execute(statement, piece.params(before=before, first=first))).all()
    total = int(rows[0][5]) if rows else 0
    return total, [
        StuckDelivery(delivery_id, int(n), int(licensor), int(portal), since)
        for delivery_id, n, licensor, portal, since, _total in rows
    ]


# --- what a name means --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _period_statement(dialect: str) -> Any:
    """(first day, last day) of the school period `:code` at the schools `:schools`:
    for a board, from the earliest start to the latest end among its schools'
    periods; nulls when none has it."""
    return select(func.min(SchoolPeriod.start_date), func.max(SchoolPeriod.end_date)).where(
        _in_schools(dialect, SchoolPeriod.school_id),
        SchoolPeriod.code == bindparam("code", type_=String()),
    )


async def period_range(
    session: AsyncSession, school_ids: Sequence[int], code: str
) -> tuple[date, date] | None:
    """`_period_statement`'s days."""
    statement = _period_statement(_dialect(session))
    row = (await session.execute(statement, {"schools": list(school_ids), "code": code})).one()
    if row[0] is None:
        return None
    start, end = (v if isinstance(v, date) else date.fromisoformat(str(v)) for v in row)
    return start, end


# --- upkeep ---------------------------------------------------------------------------------------


async def rebuild_summaries(session: AsyncSession) -> None:
    """Recompute the four summaries from the rows and forget the differences (after a
    bulk load that bypassed the triggers, e.g. `bench/generate.py`). The triggers
    keep them current otherwise."""
    from sqlalchemy import delete, insert

    e, d, lic = Entitlement, Delivery, Licence
    for table in (
        EntitlementDelta,
        LicenceDelta,
        EntitlementSummary,
        SchoolSummary,
        LicenceDaySummary,
        SchoolDaySummary,
    ):
        await session.execute(delete(table))
    is_open = case((e.quantity.is_(None), 0), else_=1)
    fine_key = ["school_id", "product_id", "seller_id", "status", "start_date"]
    fine_key.append("activation_until_date")
    await session.execute(
        insert(EntitlementSummary).from_select(
            [*fine_key, *_COUNTERS],
            select(
                e.school_id,
                e.product_id,
                d.seller_id,
                e.status,
                e.start_date,
                e.activation_until_date,
                func.count(),
                func.sum(is_open),
                func.sum(func.coalesce(e.quantity, 0)),
                func.sum(e.licences_used),
                func.sum(case((e.quantity.is_(None), 0), else_=e.licences_used)),
            )
            .join(d, d.id == e.delivery_id)
            .where(e.school_id.is_not(None))
            .group_by(
                e.school_id,
                e.product_id,
                d.seller_id,
                e.status,
                e.start_date,
                e.activation_until_date,
            ),
        )
    )
    f = EntitlementSummary
    await session.execute(
        insert(SchoolSummary).from_select(
            ["school_id", "status", "activation_until_date", *_COUNTERS],
            select(
                f.school_id,
                f.status,
                f.activation_until_date,
                *(func.sum(getattr(f, c)) for c in _COUNTERS),
            ).group_by(f.school_id, f.status, f.activation_until_date),
        )
    )
    day = day_of(session, lic.activated_at)
    await session.execute(
        insert(LicenceDaySummary).from_select(
            ["school_id", "day", "product_id", "seller_id", "activations", "activations_open"],
            select(lic.school_id, day, lic.product_id, d.seller_id, func.count(), func.sum(is_open))
            .join(e, e.id == lic.entitlement_id)
            .join(d, d.id == e.delivery_id)
            .where(lic.school_id.is_not(None))
            .group_by(lic.school_id, day, lic.product_id, d.seller_id),
        )
    )
    g = LicenceDaySummary
    await session.execute(
        insert(SchoolDaySummary).from_select(
            ["school_id", "day", "activations", "activations_open"],
            select(
                g.school_id, g.day, func.sum(g.activations), func.sum(g.activations_open)
            ).group_by(g.school_id, g.day),
        )
    )


async def compact(session: AsyncSession) -> int:
    """Fold the differences into the summaries now (PostgreSQL; the triggers do it
    every few thousand changes). Returns how many were folded."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return 0
    return int(await session.scalar(select(func.dashboard_compact())) or 0)
