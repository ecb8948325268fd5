"""Dashboard resolvers: decode what is asked (school, board, shop, product, period,
dates), decide once which schools' figures the caller may see, then let each
requested figure run its one statement (`db/dashboard.py`).

Who sees what (DOMAIN.md §7, seed 004):

* the operator: everything;
* a dashboard provider: the schools that activated ENTITLEMENTS for it with a
  valid processing agreement; licence figures only of those that also activated
  ACTIVATIONS. A named school without that consent is refused (CONSENT_REQUIRED);
  the schools of a named board without it are left out *and listed*;
* a school administrator: its own school (the token's `school` claim);
* a shop: its own deliveries, at any school (its own data: no consent needed).

A caller holding several of these roles is served by the first that applies in
that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from strawberry.types import Info

from db import dashboard as figures
from db import suppliers
from db.dashboard import Slice
from db.delivery_reads import deliveries_by_ids
from db.models import Organisation
from domain.consent import Access
from domain.errors import StatusCode
from domain.identifiers import OrgLevel
from domain.roles import DataType, Role
from resolvers import clock, lookup
from resolvers.auth import Principal, principal
from resolvers.clock import today
from resolvers.queries import product_pk
from schema.dashboard import FailureCount, StuckDeliveries, StuckDelivery
from schema.errors import BadInput, ConsentRequired, Forbidden
from schema.lookups import OrganisationIdentifierInput
from schema.types import Organisation as OrganisationType

#: Days of activations shown when no date range is given.
DEFAULT_DAYS = 30
MAX_LISTED = 100
MAX_WAIT_MINUTES = figures.MAX_RANGE_DAYS * 24 * 60


@dataclass(frozen=True)
class Scoped:
    """What the figures of one `dashboard` call count, after the access decision."""

    entitlements: Slice
    licences: Slice
    from_date: date | None
    until_date: date | None
    excluded: list[tuple[Organisation, list[DataType], str]] = field(default_factory=list)
    # Set when the one named school may not be shown licence figures.
    licence_refusal: str | None = None
    # The moment "pending longer than N minutes" counts back from, taken once.
    moment: datetime = field(default_factory=lambda: clock.utc_now())


def consent_message(shown: str, missing: list[DataType]) -> str:
    types = " and ".join(t.value for t in missing)
    return (
        f"consent required: school {shown} has not activated the data exchange {types} for "
        "this dashboard provider, or has no valid processing agreement with it"
    )


def _org_problem(found: lookup.OrgResult, field: str) -> BadInput:
    message = str(found.error) if isinstance(found, lookup.Malformed) else found.message  # type: ignore[union-attr]
    return BadInput(message, field=field, statusCode=int(StatusCode.SCHOOL_UNKNOWN))


async def _organisation(
    info: Info, identifier: OrganisationIdentifierInput, level: OrgLevel, field: str
) -> Organisation:
    if identifier.scheme is None and identifier.value.strip():
        # The common case, one known identifier, in one prepared statement; anything
        # else (unknown, ambiguous, malformed, a scheme) as every lookup answers it.
        value = identifier.value.strip()
        row = await info.context.db.run(lambda s: figures.named(s, value, level))
        if row is not None:
            return row
    found = await lookup.find_organisation(
        info.context.db, identifier.scheme, identifier.value, level
    )
    if not isinstance(found, lookup.OrgFound):
        raise _org_problem(found, field)
    return found.row


def _date_range(from_date: date | None, until_date: date | None) -> tuple[date | None, date | None]:
    if (from_date is None) != (until_date is None):
        raise BadInput("give both fromDate and untilDate, or neither", field="fromDate")
    if from_date is None or until_date is None:
        return None, None
    if until_date < from_date:
        raise BadInput("untilDate lies before fromDate", field="untilDate")
    days = (until_date - from_date).days + 1
    if days > figures.MAX_RANGE_DAYS:
        raise BadInput(
            f"the date range spans {days} days; ask for at most {figures.MAX_RANGE_DAYS} "
            "days at once",
            field="untilDate",
        )
    return from_date, until_date


async def summary(
    info: Info,
    *,
    school: OrganisationIdentifierInput | None,
    board: OrganisationIdentifierInput | None,
    shop_code: str | None,
    product_id: str | None,
    school_period: str | None,
    from_date: date | None,
    until_date: date | None,
) -> Scoped:
    caller = await principal(info.context)
    db = info.context.db
    if school is not None and board is not None:
        raise BadInput("name a school or a board, not both", field="board")
    if school_period is not None and (from_date is not None or until_date is not None):
        raise BadInput("give a schoolPeriod or a date range, not both", field="schoolPeriod")
    from_date, until_date = _date_range(from_date, until_date)

    named: list[Any] | None = None
    decided: dict[int, figures.SchoolConsent] | None = None
    if school is not None:
        named = [await _organisation(info, school, OrgLevel.PROVIDER, "school")]
    elif board is not None:
        board_row = await _organisation(info, board, OrgLevel.BOARD, "board")
        day = today()
        # The board's schools and the consent decision for each, in one statement.
        named, decided = await db.run(
            lambda s: figures.board_schools(s, caller, day, board_row.id)
        )

    piece = Slice(
        product_id=await product_pk(info, product_id, "productId") if product_id else None,
        seller_id=await _shop(info, caller, shop_code),
        from_date=from_date,
        until_date=until_date,
    )
    scoped = await _decide(info, caller, named, piece, school is not None, decided)

    if school_period is not None:
        ids = [row.id for row in named] if named is not None else None
        if ids is None and caller.school_id is not None and not caller.is_operator:
            ids = [caller.school_id]
        if not ids:
            raise BadInput("schoolPeriod needs a school or a board", field="schoolPeriod")
        found = await db.run(lambda s: figures.period_range(s, ids, school_period))
        if found is None:
            raise BadInput(
                f"no school period {school_period!r} at the named school(s)", field="schoolPeriod"
            )
        start, end = _date_range(*found)
        scoped = _with_range(scoped, start, end)
    return scoped


def _with_range(scoped: Scoped, start: date | None, end: date | None) -> Scoped:
    from dataclasses import replace

    return replace(
        scoped,
        entitlements=replace(scoped.entitlements, from_date=start, until_date=end),
        licences=replace(scoped.licences, from_date=start, until_date=end),
        from_date=start,
        until_date=end,
    )


async def _shop(info: Info, caller: Principal, shop_code: str | None) -> int | None:
    """The seller filter: the named shop, and for a caller that is only a shop, its
    own deliveries whatever it names."""
    shop_only = (
        Role.SELLER in caller.roles
        and not caller.is_operator
        and not ({Role.DASHBOARD, Role.SCHOOL} & caller.roles)
    )
    if shop_code is None:
        return caller.supplier_id if shop_only else None
    found = await info.context.db.run(lambda s: suppliers.by_code(s, shop_code))
    if found is None:
        raise BadInput(f"no supplier has code {shop_code!r}", field="shopCode")
    if shop_only and found[0] != caller.supplier_id:
        raise Forbidden("a shop sees the figures of its own deliveries only")
    return found[0]


async def _decide(
    info: Info,
    caller: Principal,
    named: list[Any] | None,
    piece: Slice,
    one_school: bool,
    decided: dict[int, figures.SchoolConsent] | None = None,
) -> Scoped:
    """The consent decision: which schools' entitlement and licence figures count."""
    readers = caller.roles & figures.READERS
    if caller.is_operator or not readers:
        # The operator sees all; a shop sees its own deliveries (`piece.seller_id`).
        ids = [row.id for row in named] if named is not None else None
        limited = piece.only(ids)
        return Scoped(limited, limited, piece.from_date, piece.until_date)

    day = today()
    db = info.context.db
    if named is None:
        if Role.DASHBOARD in readers:
            ids = await db.run(lambda s: figures.consenting_schools(s, caller, day))
        else:
            ids = [caller.school_id] if caller.school_id is not None else []
        if Role.SCHOOL in readers and caller.school_id is not None and caller.school_id not in ids:
            ids.append(caller.school_id)
    else:
        ids = [row.id for row in named]
    if decided is None:
        decided = await db.run(lambda s: figures.school_consent(s, caller, day, ids))

    excluded: list[tuple[Organisation, list[DataType], str]] = []
    refusal = None
    for row in named or []:
        consent = decided.get(row.id)
        if consent is None or not consent.missing:
            continue
        if one_school:
            if consent.entitlements is Access.NOT_INVOLVED:
                raise Forbidden("a school administrator sees the figures of its own school only")
            if consent.entitlements is not Access.ALLOWED:
                raise ConsentRequired(consent_message(row.rio_id, consent.missing))
            refusal = consent_message(row.rio_id, consent.missing)
        reason = (
            "not your school"
            if consent.entitlements is Access.NOT_INVOLVED
            else consent_message(row.rio_id, consent.missing)
        )
        excluded.append((row, consent.missing, reason))

    entitlement_ids = [
        i for i in ids if decided.get(i) and decided[i].entitlements is Access.ALLOWED
    ]
    licence_ids = [i for i in ids if decided.get(i) and decided[i].activations is Access.ALLOWED]
    return Scoped(
        piece.only(entitlement_ids),
        piece.only(licence_ids),
        piece.from_date,
        piece.until_date,
        excluded,
        refusal,
    )


# --- the figures -----------------------------------------------------------------------------


async def schools(info: Info, scoped: Scoped) -> list[Any] | None:

    ids = scoped.entitlements.school_ids
    if ids is None:
        return None
    rows = await info.context.loaders.organisation.load_many(list(ids))
    return [OrganisationType.from_row(row) for row in rows if row is not None]


def _licences(scoped: Scoped) -> Slice:
    if scoped.licence_refusal is not None:
        raise ConsentRequired(scoped.licence_refusal)
    return scoped.licences


async def status_counts(info: Info, scoped: Scoped) -> list[figures.StatusCount]:
    piece, day = scoped.entitlements, today()
    return await info.context.db.run(lambda s: figures.status_counts(s, piece, day))


async def licence_totals(info: Info, scoped: Scoped) -> figures.LicenceTotals:
    piece, day = _licences(scoped), today()
    return await info.context.db.run(lambda s: figures.licence_totals(s, piece, day))


async def activations_per_day(info: Info, scoped: Scoped) -> list[figures.ActivationDay]:
    piece = _licences(scoped)
    end = scoped.until_date or today()  # the day the curve ends
    start = scoped.from_date or end - timedelta(days=DEFAULT_DAYS - 1)
    day = today()
    return await info.context.db.run(
        lambda s: figures.activations_per_day(s, piece, start, end, day)
    )


def _aware(moment: datetime) -> datetime:
    # SQLite returns the stored UTC time without its zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _meaning(code: int) -> str:
    try:
        return StatusCode(code).name
    except ValueError:
        return "UNKNOWN"


async def failures(info: Info, scoped: Scoped) -> list[FailureCount]:

    piece = scoped.entitlements
    rows = await info.context.db.run(lambda s: figures.failures(s, piece))
    return [
        FailureCount(
            code=row.code,
            meaning=_meaning(row.code),
            recipient_role=row.role,
            entitlements=row.entitlements,
            last_reported_at=_aware(row.last_reported_at),
            supplier_pk=row.supplier_id,
        )
        for row in rows
    ]


def stuck_arguments(minutes: int, first: int) -> None:
    """`stuckDeliveries`' arguments checked (BadInput when out of range)."""
    if not 1 <= minutes <= MAX_WAIT_MINUTES:
        raise BadInput(
            f"pendingLongerThanMinutes must be between 1 and {MAX_WAIT_MINUTES}",
            argument="pendingLongerThanMinutes",
        )
    if not 1 <= first <= MAX_LISTED:
        raise BadInput(f"first must be between 1 and {MAX_LISTED}", argument="first")


async def stuck_deliveries(info: Info, scoped: Scoped, minutes: int, first: int) -> StuckDeliveries:

    stuck_arguments(minutes, first)
    piece = scoped.entitlements
    before = scoped.moment - timedelta(minutes=minutes)
    total, rows = await info.context.db.run(
        lambda s: figures.stuck_deliveries(s, piece, before, first)
    )
    ids = [row.delivery_id for row in rows]
    deliveries = await info.context.db.run(lambda s: deliveries_by_ids(s, ids)) if ids else {}
    return StuckDeliveries(
        total=total,
        deliveries=[
            StuckDelivery(
                delivery_id=str(row.delivery_id),  # type: ignore[arg-type]
                order_number=deliveries[row.delivery_id].order_number,
                submitted_at=_aware(deliveries[row.delivery_id].created_at),
                entitlements=row.entitlements,
                pending_at_licensor=row.pending_at_licensor,
                pending_at_portal=row.pending_at_portal,
                pending_since=_aware(row.pending_since),
                seller_pk=deliveries[row.delivery_id].seller_id,
                school_pk=deliveries[row.delivery_id].buyer_school_id,
            )
            for row in rows
        ],
    )
