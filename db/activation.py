"""Activation (In gebruik nemen, DOMAIN.md §6, seed 003): what the store hands the
use case (`services/activation.py`) and takes back. A licence's own changes (block,
unblock) and who holds one are in `db/licences.py`.

The use case gathers facts, asks the decision tree and registers licences through
one of two stores with the same shape (`services.unit_of_work.ActivationStore`):

* `db/activation_pg.py` on PostgreSQL: a batch of clicks in a handful of
  hand-written statements (facts for every click in one, seats, licences, events,
  audit rows and idempotency records in another), run on plain asyncpg or on a
  SQLAlchemy connection (tests, a click inside a caller's transaction);
* `db/activation_orm.py` elsewhere (SQLite): the same facts and writes through
  portable SQLAlchemy statements, one click at a time.

Both give their facts as `Gathered` (`assemble` turns rows into the tree's facts,
one rule for both) and register `Registration`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import consent
from db.models import Licence, Product, ProductComponent
from domain.activation import ActivationFacts, CandidateEntitlement, ExistingLicence, PersonFacts
from domain.entitlements import ActivationCodeState, EntitlementStatus, Variant
from domain.identifiers import PersonIdScheme
from domain.licences import LicenceStatus, LicenceTerm
from domain.persons import PersonKind
from domain.roles import Actor, DataType, Role

#: The variants a school buys for its pupils at large (quantity, no names).
OPEN_VARIANTS = tuple(v.value for v in Variant if v.is_open)


# --- the request ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductRef:
    """The clicked product, its publisher, and the sets/combis that contain it."""

    id: int
    code: str
    publisher_id: int
    containers: tuple[int, ...] = ()

    @property
    def ids(self) -> tuple[int, ...]:
        return (self.id, *self.containers)


@dataclass(frozen=True)
class ActivationRequest:
    """One click: the login school, the product, the person's identifiers (ECK iD
    first, then the secondary ids as given) and an entered activation code."""

    school_id: int
    product: ProductRef
    person_keys: tuple[tuple[PersonIdScheme, str], ...]
    activation_code: str | None = None


#: A product by code with each set or combi containing it (`ProductRef`; the compiled
#: reads embed it).
PRODUCT_BY_CODE = (
    select(Product.id, Product.publisher_id, ProductComponent.product_id)
    .outerjoin(ProductComponent, ProductComponent.component_id == Product.id)
    .where(Product.code == bindparam("code"))
)


async def product_by_code(session: AsyncSession, code: str) -> ProductRef | None:
    rows = (await session.execute(PRODUCT_BY_CODE, {"code": code})).all()
    if not rows:
        return None
    containers = tuple(sorted(row[2] for row in rows if row[2] is not None))
    return ProductRef(rows[0][0], code, rows[0][1], containers)


# --- facts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grantable:
    """What registering a licence on a candidate needs beyond the tree's facts."""

    delivery_id: int
    seller_id: int
    product_id: int
    term: LicenceTerm
    entitlee_id: int | None = None


@dataclass(frozen=True)
class LicenceRow:
    id: int
    entitlement_id: int
    person_id: int | None
    product_id: int
    school_id: int | None
    status: LicenceStatus
    activated_at: datetime
    expiration_date: date


#: A licence of the person on the product, with its entitlement's status.
HeldLicence = tuple[LicenceRow, EntitlementStatus]
#: A candidate entitlement with what registering on it needs.
Candidate = tuple[CandidateEntitlement, Grantable]
Memberships = tuple[frozenset[int], frozenset[int], frozenset[int]]
NO_MEMBERSHIPS: Memberships = (frozenset(), frozenset(), frozenset())


@dataclass(frozen=True)
class Gathered:
    """One click's facts for the tree, and the rows they came from (so that a batch
    can decide again on fresher rows with the same `assemble`)."""

    request: ActivationRequest
    today: date
    facts: ActivationFacts
    person: tuple[int, PersonKind] | None = None
    memberships: Memberships = NO_MEMBERSHIPS
    candidates: tuple[Candidate, ...] = ()
    held: tuple[HeldLicence, ...] = ()
    code_known: bool = False
    #: Portals and dashboards that receive the school's activations.
    watching: tuple[dict[str, Any], ...] = ()
    grantable: dict[int, Grantable] = field(default_factory=dict)
    licences: dict[int, LicenceRow] = field(default_factory=dict)


#: A licence's own columns, in the order `licence_row` reads them.
LICENCE_COLUMNS = (
    Licence.id,
    Licence.entitlement_id,
    Licence.person_id,
    Licence.product_id,
    Licence.school_id,
    Licence.status,
    Licence.activated_at,
    Licence.expiration_date,
)


def licence_row(r: Sequence[Any]) -> LicenceRow:
    """A licence from a row that starts with `LICENCE_COLUMNS`."""
    return LicenceRow(
        id=r[0],
        entitlement_id=r[1],
        person_id=r[2],
        product_id=r[3],
        school_id=r[4],
        status=LicenceStatus(r[5]),
        activated_at=r[6],
        expiration_date=r[7],
    )


def held_licence(r: Sequence[Any]) -> HeldLicence:
    """(licence, entitlement status) from `LICENCE_COLUMNS` and the entitlement's status."""
    return licence_row(r), EntitlementStatus(r[8])


def candidate(row: Sequence[Any], entitlee_id: int | None, code_state: str | None) -> Candidate:
    """A candidate from a row of `_CANDIDATE_COLUMNS` and `named` (dates as dates)."""
    return (
        CandidateEntitlement(
            id=row[0],
            variant=Variant(row[1]),
            status=EntitlementStatus(row[2]),
            start_date=row[3],
            activation_until_date=row[4],
            school_id=row[5],
            group_id=row[6],
            subject_id=row[7],
            quantity=row[8],
            licences_used=row[9],
            names_person=bool(row[15]),
            activation_code_state=ActivationCodeState(code_state) if code_state else None,
        ),
        Grantable(
            delivery_id=row[10],
            seller_id=row[14],
            product_id=row[11],
            term=LicenceTerm(row[12], row[13]),
            entitlee_id=entitlee_id,
        ),
    )


def assemble(
    request: ActivationRequest,
    today: date,
    person: tuple[int, PersonKind] | None,
    memberships: Memberships = NO_MEMBERSHIPS,
    held: Sequence[HeldLicence] = (),
    candidates: Sequence[Candidate] = (),
    code_known: bool = False,
    watching: Sequence[dict[str, Any]] = (),
) -> Gathered:
    """The tree's facts from the rows a store read. One licence per person per
    entitlement: an entitlement the person already holds a licence on is no
    candidate (an expired one included)."""
    if person is None:
        facts = ActivationFacts(
            today=today,
            school_id=request.school_id,
            person=None,
            activation_code=request.activation_code,
        )
        return Gathered(request, today, facts)
    person_id, kind = person
    used = {row.entitlement_id for row, _ in held}
    usable = tuple((c, extra) for c, extra in candidates if c.id not in used)
    facts = ActivationFacts(
        today=today,
        school_id=request.school_id,
        person=PersonFacts(person_id, kind, *memberships),
        existing_licences=tuple(
            ExistingLicence(
                id=row.id,
                entitlement_id=row.entitlement_id,
                status=row.status,
                expiration_date=row.expiration_date,
                entitlement_status=status,
            )
            for row, status in held
        ),
        candidates=tuple(candidate for candidate, _ in usable),
        activation_code=request.activation_code,
        activation_code_known=code_known,
    )
    return Gathered(
        request,
        today,
        facts,
        person=person,
        memberships=memberships,
        candidates=tuple(candidates),
        held=tuple(held),
        code_known=code_known,
        watching=tuple(watching),
        grantable={candidate.id: extra for candidate, extra in usable},
        licences={row.id: row for row, _ in held},
    )


def reassemble(
    gathered: Gathered,
    seats: dict[int, SeatState],
    held: Sequence[HeldLicence],
    codes: dict[int, str | None],
) -> Gathered:
    """The same click's facts on the rows as they are now: the locked entitlements'
    status and seats (a candidate that is gone is no candidate), the codes' state and
    the person's licences."""
    fresh: list[Candidate] = []
    for found, extra in gathered.candidates:
        seat = seats.get(found.id)
        if seat is None:
            continue
        found = replace(
            found,
            status=seat.status,
            quantity=seat.quantity,
            licences_used=seat.licences_used,
        )
        if extra.entitlee_id is not None and extra.entitlee_id in codes:
            state = codes[extra.entitlee_id]
            found = replace(
                found, activation_code_state=ActivationCodeState(state) if state else None
            )
        fresh.append((found, extra))
    return assemble(
        gathered.request,
        gathered.today,
        gathered.person,
        gathered.memberships,
        held,
        fresh,
        gathered.code_known,
        gathered.watching,
    )


# --- registering -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeatState:
    """A locked entitlement as it is now (seats already taken in this batch added)."""

    status: EntitlementStatus
    quantity: int | None
    licences_used: int


@dataclass(frozen=True)
class Registration:
    """A licence to create: take a seat (and the activation code), write the licence,
    its LICENCE_ACTIVATED event and its audit row."""

    entitlement_id: int
    person_id: int
    product_id: int
    school_id: int
    delivery_id: int
    expiration_date: date
    actor: Actor
    payload: dict[str, Any]
    detail: dict[str, Any]
    code_entitlee_id: int | None = None


def recipients(seller_id: int, watching: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Who an activation event is for: the shop always (its contract with the publisher
    gives purpose, no activation by the school needed), then the watching portals and
    dashboards."""
    return [{"supplierId": seller_id, "role": "SELLER"}, *watching]


async def watchers(session: AsyncSession, school_id: int, today: date) -> list[dict[str, Any]]:
    """Portals and dashboards that receive the school's activations (in gebruik name):
    only while the school has activated the ACTIVATIONS data exchange towards them and
    a processing agreement (mandate) is valid today (`db.consent.receivers`)."""
    receivers = await consent.receivers(
        session, school_id, DataType.ACTIVATIONS, list(WATCHING_ROLES), today
    )
    return [
        {"supplierId": supplier_id, "role": role.value.upper()} for supplier_id, role in receivers
    ]


#: Who, besides the shop, receives activations (when the school consents).
WATCHING_ROLES = (Role.PORTAL, Role.DASHBOARD)
