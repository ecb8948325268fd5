"""Activation (In gebruik nemen): gather the facts for the decision tree, and
register the licence it grants, safely under concurrency (DOMAIN.md §6, seed 003).

``activate()`` runs on the caller's session:

1. **Facts.** The person (by ECK iD, else by a secondary id; school-scoped ids
   within the login school), the person's schools, groups and subjects *today*
   (enrolments, group memberships and subject enrolments whose school period
   contains today), the person's licences on the product, and the candidate
   entitlements: open ones of the login school on the product, individual ones
   naming the person, and the one whose activation code was entered. A licence
   covers every component of a set or combi, so a click on a component also finds
   licences and entitlements on the sets and combis that contain it. On PostgreSQL
   all of it is one statement; elsewhere four or five.
2. **Decision.** ``domain.activation.decide()``: pure, names the rule.
3. **Seat and licence.** A grant that creates a licence takes a seat with ONE
   guarded statement, ``UPDATE entitlement SET licences_used = licences_used + 1
   WHERE id = … AND (quantity IS NULL OR licences_used < quantity) AND status =
   'LINK_READY'`` (the counter also counts individual grants: the cancel rule 42
   reads it). On PostgreSQL that UPDATE, the activation code (when the grant is by
   code), the licence, its event and its audit row are one statement (data-modifying
   CTEs that write only when the UPDATE returned the row), so it is atomic on its own
   and the click can run without an explicit transaction: the entitlement's row lock
   then lasts for that statement and its commit, not for the round trips after it.
   At 08:30 on the first school day a whole class activates on one entitlement and
   waits on that lock in turn. Elsewhere (SQLite, which serialises writers anyway)
   the same steps are separate statements in the caller's transaction.

   If the UPDATE matches no row, a concurrent activation took the last seat, or the
   seller blocked or cancelled it a moment ago, or someone used the activation code:
   the entitlement's status, counter and code are read again and the tree decides
   again on the fresh facts, so the denial names the real reason. A seat freed by a
   concurrent transaction that rolled back is tried again; after ``SEAT_ATTEMPTS``
   misses on one entitlement it is excluded (``decide(…, exclude=…)``), which the
   tree reports as QUANTITY_EXHAUSTED.
4. **Double click.** The unique (entitlement, person) constraint on ``licence`` stops
   a second licence from the same click arriving twice at once; the loser's
   statement fails with an IntegrityError and the caller runs ``activate()`` again,
   which then finds the winner's licence (EXISTING_LICENCE).

One licence per person per entitlement: an entitlement on which the person already
holds a licence (expired, say) is not a candidate again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db import consent
from db.models import (
    Delivery,
    Enrolment,
    Entitlee,
    Entitlement,
    GroupMembership,
    Licence,
    Person,
    PersonIdentifier,
    Product,
    ProductComponent,
    SchoolPeriod,
    SubjectEnrolment,
    TeachingGroup,
)
from db.outbox import Actor, EventRow, audit, events_written, record_events
from db.outbox import _tx_id as outbox_tx_position
from domain.activation import (
    ActivationFacts,
    CandidateEntitlement,
    Decision,
    ExistingLicence,
    PersonFacts,
    Rule,
    decide,
)
from domain.entitlements import ActivationCodeState, EntitlementStatus, Variant
from domain.events import LICENCE_EVENT, EventKind
from domain.identifiers import PersonIdScheme, is_school_scoped
from domain.licences import LicenceAction, LicenceStatus, LicenceTerm, transition
from domain.persons import PersonKind
from domain.roles import DataType, Role

SEAT_ATTEMPTS = 3
OPEN_VARIANTS = [v.value for v in Variant if v.is_open]


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
    school_id: int
    product: ProductRef
    person_keys: tuple[tuple[PersonIdScheme, str], ...]
    activation_code: str | None = None


# The hot path's statements are built once, with bound parameters: building a
# SELECT with its joins and aliases costs more Python time than running it, and a
# statement object that is reused also reuses SQLAlchemy's compiled form.

_PRODUCT = (
    select(Product.id, Product.publisher_id, ProductComponent.product_id)
    .outerjoin(ProductComponent, ProductComponent.component_id == Product.id)
    .where(Product.code == bindparam("code"))
)


async def product_by_code(session: AsyncSession, code: str) -> ProductRef | None:
    rows = (await session.execute(_PRODUCT, {"code": code})).all()
    if not rows:
        return None
    containers = tuple(sorted(row[2] for row in rows if row[2] is not None))
    return ProductRef(rows[0][0], code, rows[0][1], containers)


# --- facts -----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Gathered:
    facts: ActivationFacts
    grantable: dict[int, Grantable] = field(default_factory=dict)
    licences: dict[int, LicenceRow] = field(default_factory=dict)
    #: Portals and dashboards that receive the activation, when already gathered.
    watching: list[dict[str, Any]] | None = None

    def with_candidate(self, fresh: CandidateEntitlement) -> Gathered:
        candidates = tuple(fresh if c.id == fresh.id else c for c in self.facts.candidates)
        return replace(self, facts=replace(self.facts, candidates=candidates))


def _person_statement(keys: int) -> Any:
    conditions = [
        and_(
            PersonIdentifier.scheme == bindparam(f"scheme{n}"),
            PersonIdentifier.scope == bindparam(f"scope{n}"),
            PersonIdentifier.value == bindparam(f"value{n}"),
        )
        for n in range(keys)
    ]
    return (
        select(PersonIdentifier.scheme, PersonIdentifier.value, Person.id, Person.kind)
        .join(Person, Person.id == PersonIdentifier.person_id)
        .where(or_(*conditions), Person.erased_at.is_(None))
    )


# By number of identifiers sent: one (the ECK iD) is by far the most common.
_PERSON = {keys: _person_statement(keys) for keys in range(1, 5)}


async def _person(
    session: AsyncSession, request: ActivationRequest
) -> tuple[int, PersonKind] | None:
    """Resolve by ECK iD first, else by the secondary ids in the order given."""
    keys = request.person_keys
    statement = _PERSON[len(keys)] if len(keys) in _PERSON else _person_statement(len(keys))
    params: dict[str, Any] = {}
    for n, (scheme, value) in enumerate(keys):
        params[f"scheme{n}"] = scheme.value
        params[f"scope{n}"] = str(request.school_id) if is_school_scoped(scheme) else ""
        params[f"value{n}"] = value
    found = {
        (scheme, value): (person_id, kind)
        for scheme, value, person_id, kind in await session.execute(statement, params)
    }
    # ECK iD first, then the secondary ids as given (sorted() is stable).
    for scheme, value in sorted(keys, key=lambda key: key[0] is not PersonIdScheme.ECK_ID):
        if (scheme.value, value) in found:
            person_id, kind = found[(scheme.value, value)]
            return person_id, PersonKind(kind)
    return None


def _memberships_statement() -> Any:
    """The person's schools (S), groups (G) and subjects (J) in periods containing today."""
    person, day = bindparam("person_id"), bindparam("today")
    current = and_(SchoolPeriod.start_date <= day, SchoolPeriod.end_date >= day)
    schools = (
        select(literal("S").label("k"), Enrolment.school_id.label("v"))
        .join(SchoolPeriod, SchoolPeriod.id == Enrolment.period_id)
        .where(Enrolment.person_id == person, current)
    )
    groups = (
        select(literal("G").label("k"), GroupMembership.group_id.label("v"))
        .join(TeachingGroup, TeachingGroup.id == GroupMembership.group_id)
        .join(SchoolPeriod, SchoolPeriod.id == TeachingGroup.period_id)
        .where(GroupMembership.person_id == person, current)
    )
    subjects = (
        select(literal("J").label("k"), SubjectEnrolment.subject_id.label("v"))
        .join(SchoolPeriod, SchoolPeriod.id == SubjectEnrolment.period_id)
        .where(SubjectEnrolment.person_id == person, current)
    )
    return union_all(schools, groups, subjects)


_MEMBERSHIPS = _memberships_statement()


async def _memberships(
    session: AsyncSession, person_id: int, today: date
) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
    found: dict[str, set[int]] = {"S": set(), "G": set(), "J": set()}
    for kind, value in await session.execute(
        _MEMBERSHIPS, {"person_id": person_id, "today": today}
    ):
        found[kind].add(value)
    return frozenset(found["S"]), frozenset(found["G"]), frozenset(found["J"])


_LICENCES = (
    select(
        Licence.id,
        Licence.entitlement_id,
        Licence.person_id,
        Licence.product_id,
        Licence.school_id,
        Licence.status,
        Licence.activated_at,
        Licence.expiration_date,
        Entitlement.status,
    )
    .join(Entitlement, Entitlement.id == Licence.entitlement_id)
    .where(
        Licence.person_id == bindparam("person_id"),
        Licence.product_id.in_(bindparam("product_ids", expanding=True)),
    )
)


async def _licences(
    session: AsyncSession, person_id: int, product: ProductRef
) -> list[tuple[LicenceRow, EntitlementStatus]]:
    rows = await session.execute(
        _LICENCES, {"person_id": person_id, "product_ids": list(product.ids)}
    )
    return [
        (
            LicenceRow(
                id=r[0],
                entitlement_id=r[1],
                person_id=r[2],
                product_id=r[3],
                school_id=r[4],
                status=LicenceStatus(r[5]),
                activated_at=r[6],
                expiration_date=r[7],
            ),
            EntitlementStatus(r[8]),
        )
        for r in rows
    ]


_CANDIDATE_COLUMNS = (
    Entitlement.id,
    Entitlement.variant,
    Entitlement.status,
    Entitlement.start_date,
    Entitlement.activation_until_date,
    Entitlement.school_id,
    Entitlement.group_id,
    Entitlement.subject_id,
    Entitlement.quantity,
    Entitlement.licences_used,
    Entitlement.delivery_id,
    Entitlement.product_id,
    Entitlement.min_expiration_date,
    Entitlement.licence_duration_months,
    Delivery.seller_id,
)


def _candidates_statement(with_code: bool) -> Any:
    """Candidate entitlements on the product (or a set/combi containing it).

    Each branch of the id union uses its own index (school, entitlee person,
    activation code), so the cost does not grow with the entitlements of the
    product elsewhere in the country."""
    product_ids = bindparam("product_ids", expanding=True)
    person = bindparam("person_id")
    open_entitlement = aliased(Entitlement)
    by_person, by_code, named_entitlee = aliased(Entitlee), aliased(Entitlee), aliased(Entitlee)
    branches = [
        select(open_entitlement.id).where(
            open_entitlement.school_id == bindparam("school_id"),
            open_entitlement.product_id.in_(product_ids),
            open_entitlement.variant.in_(OPEN_VARIANTS),
        ),
        select(by_person.entitlement_id).where(by_person.person_id == person),
    ]
    if with_code:
        branches.append(
            select(by_code.entitlement_id).where(by_code.activation_code == bindparam("code"))
        )
    named = (
        select(named_entitlee.id)
        .where(named_entitlee.entitlement_id == Entitlement.id, named_entitlee.person_id == person)
        .correlate(Entitlement)
        .exists()
    )
    statement = select(*_CANDIDATE_COLUMNS, named.label("named")).join(
        Delivery, Delivery.id == Entitlement.delivery_id
    )
    if with_code:
        statement = statement.outerjoin(
            Entitlee,
            and_(
                Entitlee.entitlement_id == Entitlement.id,
                Entitlee.activation_code == bindparam("code"),
            ),
        ).add_columns(Entitlee.id, Entitlee.code_state)
    return statement.where(
        Entitlement.id.in_(union(*branches)), Entitlement.product_id.in_(product_ids)
    ).order_by(Entitlement.id)


_CANDIDATES = {False: _candidates_statement(False), True: _candidates_statement(True)}
_CODE_KNOWN = select(Entitlee.id).where(Entitlee.activation_code == bindparam("code")).limit(1)


def _candidate(row: Any, *, names_person: bool, code_state: str | None) -> CandidateEntitlement:
    return CandidateEntitlement(
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
        names_person=names_person,
        activation_code_state=ActivationCodeState(code_state) if code_state else None,
    )


async def _candidates(
    session: AsyncSession, request: ActivationRequest, person_id: int
) -> tuple[list[tuple[CandidateEntitlement, Grantable]], bool]:
    """Candidate entitlements, and whether the entered code exists at all."""
    code = request.activation_code
    params: dict[str, Any] = {
        "product_ids": list(request.product.ids),
        "person_id": person_id,
        "school_id": request.school_id,
    }
    if code is not None:
        params["code"] = code
    found: list[tuple[CandidateEntitlement, Grantable]] = []
    code_seen = False
    for row in await session.execute(_CANDIDATES[code is not None], params):
        entitlee_id, code_state = (row[16], row[17]) if code is not None else (None, None)
        code_seen = code_seen or entitlee_id is not None
        found.append(
            (
                _candidate(row, names_person=bool(row[15]), code_state=code_state),
                Grantable(
                    delivery_id=row[10],
                    seller_id=row[14],
                    product_id=row[11],
                    term=LicenceTerm(row[12], row[13]),
                    entitlee_id=entitlee_id,
                ),
            )
        )
    known = code_seen
    if code is not None and not code_seen:
        known = (await session.scalar(_CODE_KNOWN, {"code": code})) is not None
    return found, known


def _assemble(
    request: ActivationRequest,
    today: date,
    person: tuple[int, PersonKind] | None,
    memberships: tuple[frozenset[int], frozenset[int], frozenset[int]],
    licences: list[tuple[LicenceRow, EntitlementStatus]],
    candidates: list[tuple[CandidateEntitlement, Grantable]],
    code_known: bool,
    watching: list[dict[str, Any]] | None,
) -> Gathered:
    if person is None:
        return Gathered(
            ActivationFacts(
                today=today,
                school_id=request.school_id,
                person=None,
                activation_code=request.activation_code,
            )
        )
    person_id, kind = person
    # One licence per person per entitlement: a used entitlement is no candidate.
    used = {row.entitlement_id for row, _ in licences}
    candidates = [(c, extra) for c, extra in candidates if c.id not in used]
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
            for row, status in licences
        ),
        candidates=tuple(candidate for candidate, _ in candidates),
        activation_code=request.activation_code,
        activation_code_known=code_known,
    )
    return Gathered(
        facts,
        grantable={candidate.id: extra for candidate, extra in candidates},
        licences={row.id: row for row, _ in licences},
        watching=watching,
    )


async def gather(session: AsyncSession, request: ActivationRequest, today: date) -> Gathered:
    """Every fact the decision tree needs: one statement on PostgreSQL, four or five
    portable ones elsewhere (the same facts; the API tests run both)."""
    if _is_postgres(session):
        return await _gather_postgres(session, request, today)
    person = await _person(session, request)
    if person is None:
        return _assemble(request, today, None, _NO_MEMBERSHIPS, [], [], False, None)
    memberships = await _memberships(session, person[0], today)
    licences = await _licences(session, person[0], request.product)
    candidates, code_known = await _candidates(session, request, person[0])
    return _assemble(request, today, person, memberships, licences, candidates, code_known, None)


_NO_MEMBERSHIPS: tuple[frozenset[int], frozenset[int], frozenset[int]] = (
    frozenset(),
    frozenset(),
    frozenset(),
)


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


# On PostgreSQL every fact comes back from one statement as JSON arrays: the click
# that starts the first lesson of the day costs one round trip to gather, not six.
# The branches are the portable statements above, and `watching` is the rule of
# `db.consent.receivers` for ACTIVATIONS towards portals and dashboards.
_FACTS_POSTGRES = text(
    """
WITH k AS (
    SELECT * FROM unnest(CAST(:schemes AS text[]), CAST(:scopes AS text[]),
                         CAST(:identifier_values AS text[]))
        WITH ORDINALITY AS k(scheme, scope, value, n)
), p AS (
    SELECT person.id, person.kind
    FROM k
    JOIN person_identifier pi ON pi.scheme = k.scheme AND pi.scope = k.scope
                             AND pi.value = k.value
    JOIN person ON person.id = pi.person_id
    WHERE person.erased_at IS NULL
    ORDER BY k.n
    LIMIT 1
), m AS (
    SELECT 'S' AS k, e.school_id AS v
    FROM p JOIN enrolment e ON e.person_id = p.id
    JOIN school_period sp ON sp.id = e.period_id
    WHERE sp.start_date <= CAST(:today AS date) AND sp.end_date >= CAST(:today AS date)
    UNION ALL
    SELECT 'G', gm.group_id
    FROM p JOIN group_membership gm ON gm.person_id = p.id
    JOIN teaching_group g ON g.id = gm.group_id
    JOIN school_period sp ON sp.id = g.period_id
    WHERE sp.start_date <= CAST(:today AS date) AND sp.end_date >= CAST(:today AS date)
    UNION ALL
    SELECT 'J', se.subject_id
    FROM p JOIN subject_enrolment se ON se.person_id = p.id
    JOIN school_period sp ON sp.id = se.period_id
    WHERE sp.start_date <= CAST(:today AS date) AND sp.end_date >= CAST(:today AS date)
), l AS (
    SELECT l.id, l.entitlement_id, l.person_id, l.product_id, l.school_id, l.status,
           l.activated_at, l.expiration_date, e.status AS entitlement_status
    FROM p JOIN licence l ON l.person_id = p.id
    JOIN entitlement e ON e.id = l.entitlement_id
    WHERE l.product_id = ANY(CAST(:product_ids AS integer[]))
), c AS (
    SELECT e.id, e.variant, e.status, e.start_date, e.activation_until_date, e.school_id,
           e.group_id, e.subject_id, e.quantity, e.licences_used, e.delivery_id,
           e.product_id, e.min_expiration_date, e.licence_duration_months, d.seller_id,
           EXISTS (SELECT 1 FROM entitlee n
                   WHERE n.entitlement_id = e.id AND n.person_id = p.id) AS named,
           code.id AS entitlee_id, code.code_state
    FROM p
    JOIN entitlement e ON e.id IN (
        SELECT o.id FROM entitlement o
        WHERE o.school_id = CAST(:school_id AS integer)
          AND o.product_id = ANY(CAST(:product_ids AS integer[]))
          AND o.variant IN ('SCHOOL', 'SCHOOL_SUBJECT', 'SCHOOL_GROUP')
        UNION SELECT x.entitlement_id FROM entitlee x WHERE x.person_id = p.id
        UNION SELECT y.entitlement_id FROM entitlee y
              WHERE y.activation_code = CAST(:code AS varchar)
    )
    JOIN delivery d ON d.id = e.delivery_id
    LEFT JOIN entitlee code ON code.entitlement_id = e.id
                           AND code.activation_code = CAST(:code AS varchar)
    WHERE e.product_id = ANY(CAST(:product_ids AS integer[]))
), w AS (
    SELECT DISTINCT x.supplier_id, x.role
    FROM data_exchange x
    WHERE x.school_id = CAST(:school_id AS integer) AND x.data_type = 'ACTIVATIONS'
      AND x.role IN ('portal', 'dashboard') AND x.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM processing_agreement a
                  WHERE a.school_id = x.school_id AND a.supplier_id = x.supplier_id
                    AND a.valid_from <= CAST(:today AS date)
                    AND (a.valid_until IS NULL OR a.valid_until >= CAST(:today AS date)))
)
SELECT
    (SELECT json_build_array(p.id, p.kind) FROM p),
    (SELECT json_agg(json_build_array(m.k, m.v)) FROM m),
    (SELECT json_agg(json_build_array(l.id, l.entitlement_id, l.person_id, l.product_id,
                                      l.school_id, l.status, l.activated_at,
                                      l.expiration_date, l.entitlement_status)) FROM l),
    (SELECT json_agg(json_build_array(c.id, c.variant, c.status, c.start_date,
                                      c.activation_until_date, c.school_id, c.group_id,
                                      c.subject_id, c.quantity, c.licences_used,
                                      c.delivery_id, c.product_id, c.min_expiration_date,
                                      c.licence_duration_months, c.seller_id, c.named,
                                      c.entitlee_id, c.code_state) ORDER BY c.id) FROM c),
    (SELECT json_agg(json_build_array(w.supplier_id, w.role) ORDER BY w.supplier_id, w.role)
     FROM w),
    CAST(:code AS varchar) IS NOT NULL
        AND EXISTS (SELECT 1 FROM entitlee z WHERE z.activation_code = CAST(:code AS varchar))
"""
)


def _json(value: Any) -> Any:
    """SQLAlchemy's asyncpg dialect decodes json columns already; a plain driver not."""
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else value


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


async def _gather_postgres(
    session: AsyncSession, request: ActivationRequest, today: date
) -> Gathered:
    keys = sorted(request.person_keys, key=lambda key: key[0] is not PersonIdScheme.ECK_ID)
    connection = await session.connection()
    row = (
        await connection.execute(
            _FACTS_POSTGRES,
            {
                "schemes": [scheme.value for scheme, _ in keys],
                "scopes": [
                    str(request.school_id) if is_school_scoped(scheme) else "" for scheme, _ in keys
                ],
                "identifier_values": [value for _, value in keys],
                "today": today,
                "product_ids": list(request.product.ids),
                "school_id": request.school_id,
                "code": request.activation_code,
            },
        )
    ).one()
    person_json, memberships_json, licences_json, candidates_json, watchers_json, known = row
    if person_json is None:
        return _assemble(request, today, None, _NO_MEMBERSHIPS, [], [], False, None)
    person_id, kind = _json(person_json)
    found: dict[str, set[int]] = {"S": set(), "G": set(), "J": set()}
    for k, v in _json(memberships_json):
        found[k].add(v)
    licences = [
        (
            LicenceRow(
                id=r[0],
                entitlement_id=r[1],
                person_id=r[2],
                product_id=r[3],
                school_id=r[4],
                status=LicenceStatus(r[5]),
                activated_at=datetime.fromisoformat(r[6]),
                expiration_date=date.fromisoformat(r[7]),
            ),
            EntitlementStatus(r[8]),
        )
        for r in _json(licences_json)
    ]
    candidates = []
    for r in _json(candidates_json):
        r[3], r[4], r[12] = _day(r[3]), _day(r[4]), _day(r[12])
        candidates.append(
            (
                _candidate(r, names_person=bool(r[15]), code_state=r[17]),
                Grantable(
                    delivery_id=r[10],
                    seller_id=r[14],
                    product_id=r[11],
                    term=LicenceTerm(r[12], r[13]),
                    entitlee_id=r[16],
                ),
            )
        )
    watching = [
        {"supplierId": supplier_id, "role": role.upper()}
        for supplier_id, role in _json(watchers_json)
    ]
    return _assemble(
        request,
        today,
        (person_id, PersonKind(kind)),
        (frozenset(found["S"]), frozenset(found["G"]), frozenset(found["J"])),
        licences,
        candidates,
        bool(known),
        watching,
    )


_RELOAD = select(Entitlement.status, Entitlement.licences_used, Entitlement.quantity).where(
    Entitlement.id == bindparam("entitlement_id")
)
_RELOAD_CODE = select(Entitlee.code_state).where(Entitlee.id == bindparam("entitlee_id"))


async def _reload(
    session: AsyncSession, gathered: Gathered, entitlement_id: int
) -> CandidateEntitlement:
    """The candidate as it is now: status, seats and (if entered) its code's state."""
    status, used, quantity = (
        await session.execute(_RELOAD, {"entitlement_id": entitlement_id})
    ).one()
    old = next(c for c in gathered.facts.candidates if c.id == entitlement_id)
    code_state = old.activation_code_state
    entitlee_id = gathered.grantable[entitlement_id].entitlee_id
    if code_state is not None and entitlee_id is not None:
        code_state = ActivationCodeState(
            await session.scalar(_RELOAD_CODE, {"entitlee_id": entitlee_id})
        )
    return replace(
        old,
        status=EntitlementStatus(status),
        licences_used=used,
        quantity=quantity,
        activation_code_state=code_state,
    )


# --- registering the licence ------------------------------------------------------------------


async def watchers(session: AsyncSession, school_id: int, today: date) -> list[dict[str, Any]]:
    """Portals and dashboards that receive the school's activations (in gebruik name):
    only while the school has activated the ACTIVATIONS data exchange towards them and
    a processing agreement (mandate) is valid today."""
    receivers = await consent.receivers(
        session, school_id, DataType.ACTIVATIONS, [Role.PORTAL, Role.DASHBOARD], today
    )
    return [
        {"supplierId": supplier_id, "role": role.value.upper()} for supplier_id, role in receivers
    ]


def recipients(seller_id: int, watching: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Who an activation event is for: the shop always (its contract with the publisher
    gives purpose, no activation by the school needed), then the watching portals and
    dashboards."""
    return [{"supplierId": seller_id, "role": "SELLER"}, *watching]


_REGISTER_POSTGRES = """
WITH free_code AS (
    SELECT id FROM entitlee
    WHERE id = CAST(:entitlee_id AS bigint) AND code_state = 'UNUSED'
    FOR UPDATE
), seat AS (
    UPDATE entitlement SET licences_used = licences_used + 1
    WHERE id = CAST(:entitlement_id AS bigint)
      AND (quantity IS NULL OR licences_used < quantity)
      AND status = 'LINK_READY'
      AND (CAST(:entitlee_id AS bigint) IS NULL OR EXISTS (SELECT 1 FROM free_code))
    RETURNING id
), code AS (
    UPDATE entitlee SET code_state = 'USED', person_id = CAST(:person_id AS bigint)
    WHERE id IN (SELECT id FROM free_code) AND EXISTS (SELECT 1 FROM seat)
    RETURNING id
), lic AS (
    INSERT INTO licence (entitlement_id, person_id, product_id, school_id, status, expiration_date)
    SELECT seat.id, CAST(:person_id AS bigint), CAST(:product_id AS integer),
           CAST(:school_id AS integer), 'ACTIVATED', CAST(:expiration_date AS date)
    FROM seat
    RETURNING id, activated_at
), ev AS (
    INSERT INTO event (tx_id, kind, school_id, delivery_id, entitlement_id, licence_id, status,
                       actor_supplier_id, actor_role, payload)
    SELECT {tx_position}, 'LICENCE_ACTIVATED', CAST(:school_id AS integer),
           CAST(:delivery_id AS bigint), CAST(:entitlement_id AS bigint), lic.id, 'ACTIVATED',
           CAST(:actor_supplier_id AS integer), CAST(:actor_role AS varchar),
           CAST(:payload AS json)
    FROM lic
), au AS (
    INSERT INTO audit_log (supplier_id, role, action, object_type, object_id, school_id, detail)
    SELECT CAST(:actor_supplier_id AS integer), CAST(:actor_role AS varchar), 'licence.activate',
           'licence', lic.id::text, CAST(:school_id AS integer), CAST(:detail AS json)
    FROM lic
)
SELECT id, activated_at FROM lic
"""
_REGISTER_STATEMENTS: dict[str, Any] = {}


def _register_statement(session: AsyncSession) -> Any:
    """The registration statement, with the event's position in transaction order
    written exactly as ``db.outbox`` writes it for every other event."""
    position = str(outbox_tx_position(session))
    statement = _REGISTER_STATEMENTS.get(position)
    if statement is None:
        statement = _REGISTER_STATEMENTS[position] = text(
            _REGISTER_POSTGRES.format(tx_position=position)
        )
    return statement


async def _register(
    session: AsyncSession,
    *,
    entitlement_id: int,
    person_id: int,
    school_id: int,
    extra: Grantable,
    expiration_date: date,
    payload: dict[str, Any],
    detail: dict[str, Any],
    actor: Actor,
    code_entitlee_id: int | None = None,
) -> tuple[int, datetime] | None:
    """Take a seat (and the activation code, for the ACTIVATION_CODE rule) and create
    the licence with its event and audit row; None when the guarded UPDATE found no
    seat or the code was used a moment ago (nothing was written then).

    On PostgreSQL this is one statement: atomic on its own, so it may run outside an
    explicit transaction, which releases the entitlement's row lock as soon as the
    statement commits instead of after a further round trip to the client."""
    if _is_postgres(session):
        connection = await session.connection()
        row = (
            await connection.execute(
                _register_statement(session),
                {
                    "entitlement_id": entitlement_id,
                    "person_id": person_id,
                    "product_id": extra.product_id,
                    "school_id": school_id,
                    "expiration_date": expiration_date,
                    "delivery_id": extra.delivery_id,
                    "actor_supplier_id": actor.supplier_id,
                    "actor_role": actor.role,
                    "payload": json.dumps(payload),
                    "detail": json.dumps(detail),
                    "entitlee_id": code_entitlee_id,
                },
            )
        ).first()
        if row is None:
            return None
        await events_written(session)  # wake the live broker (issue #5)
        return (row[0], row[1])

    if code_entitlee_id is not None:
        # The code and the seat go together or not at all.
        try:
            async with session.begin_nested():
                if not await _use_code(session, code_entitlee_id, person_id):
                    raise _NoSeat
                registered = await _register(
                    session,
                    entitlement_id=entitlement_id,
                    person_id=person_id,
                    school_id=school_id,
                    extra=extra,
                    expiration_date=expiration_date,
                    payload=payload,
                    detail=detail,
                    actor=actor,
                )
                if registered is None:
                    raise _NoSeat
                return registered
        except _NoSeat:
            return None
    seat = await session.execute(
        update(Entitlement)
        .where(
            Entitlement.id == entitlement_id,
            or_(Entitlement.quantity.is_(None), Entitlement.licences_used < Entitlement.quantity),
            Entitlement.status == EntitlementStatus.LINK_READY.value,
        )
        .values(licences_used=Entitlement.licences_used + 1)
    )
    if seat.rowcount == 0:  # type: ignore[attr-defined]
        return None
    licence_id, activated_at = (
        await session.execute(
            insert(Licence)
            .values(
                entitlement_id=entitlement_id,
                person_id=person_id,
                product_id=extra.product_id,
                school_id=school_id,
                status=LicenceStatus.ACTIVATED.value,
                expiration_date=expiration_date,
            )
            .returning(Licence.id, Licence.activated_at)
        )
    ).one()
    await record_events(
        session,
        actor,
        [
            EventRow(
                kind=EventKind.LICENCE_ACTIVATED,
                school_id=school_id,
                status=LicenceStatus.ACTIVATED.value,
                delivery_id=extra.delivery_id,
                entitlement_id=entitlement_id,
                licence_id=licence_id,
                payload=payload,
            )
        ],
    )
    await audit(
        session,
        actor,
        "licence.activate",
        "licence",
        licence_id,
        school_id=school_id,
        detail=detail,
    )
    return licence_id, activated_at


async def _use_code(session: AsyncSession, entitlee_id: int, person_id: int) -> bool:
    """Mark the activation code USED by this person; False if someone used it first."""
    result = await session.execute(
        update(Entitlee)
        .where(Entitlee.id == entitlee_id, Entitlee.code_state == ActivationCodeState.UNUSED.value)
        .values(code_state=ActivationCodeState.USED.value, person_id=person_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


class _NoSeat(Exception):
    """No seat, or the activation code was used a moment ago: undo the savepoint."""


@dataclass(frozen=True)
class Outcome:
    """The decision, and the licence it granted access on (new or existing)."""

    decision: Decision
    licence: LicenceRow | None = None
    created: bool = False


async def activate(
    session: AsyncSession, request: ActivationRequest, *, actor: Actor, today: date
) -> Outcome:
    """Gather, decide, and register (see the module docstring)."""
    gathered = await gather(session, request, today)
    person = gathered.facts.person
    misses: dict[int, int] = {}
    exclude: set[int] = set()
    watching = gathered.watching
    for _ in range(SEAT_ATTEMPTS * 4):
        decision = decide(gathered.facts, exclude=frozenset(exclude))
        if not decision.creates_licence:
            licence = gathered.licences.get(decision.licence_id) if decision.licence_id else None
            return Outcome(decision, licence)
        assert person is not None
        assert decision.entitlement_id is not None
        entitlement_id = decision.entitlement_id
        extra = gathered.grantable[entitlement_id]
        expiration_date = extra.term.expiration_date(today)
        if watching is None:
            watching = await watchers(session, request.school_id, today)
        payload = {
            "rule": decision.rule.value,
            "productId": request.product.code,
            "expirationDate": expiration_date.isoformat(),
            "recipients": recipients(extra.seller_id, watching),
        }
        detail = {"rule": decision.rule.value, "entitlementId": entitlement_id}
        registered = await _register(
            session,
            entitlement_id=entitlement_id,
            person_id=person.person_id,
            school_id=request.school_id,
            extra=extra,
            expiration_date=expiration_date,
            payload=payload,
            detail=detail,
            actor=actor,
            code_entitlee_id=extra.entitlee_id if decision.rule is Rule.ACTIVATION_CODE else None,
        )
        if registered is not None:
            licence_id, activated_at = registered
            return Outcome(
                decision,
                LicenceRow(
                    id=licence_id,
                    entitlement_id=entitlement_id,
                    person_id=person.person_id,
                    product_id=extra.product_id,
                    school_id=request.school_id,
                    status=LicenceStatus.ACTIVATED,
                    activated_at=activated_at,
                    expiration_date=expiration_date,
                ),
                created=True,
            )
        # No seat: decide again on the entitlement as it is now.
        gathered = gathered.with_candidate(await _reload(session, gathered, entitlement_id))
        misses[entitlement_id] = misses.get(entitlement_id, 0) + 1
        if misses[entitlement_id] >= SEAT_ATTEMPTS:
            exclude.add(entitlement_id)
    return Outcome(decide(gathered.facts, exclude=frozenset(gathered.grantable)))


# --- blocking one licence ------------------------------------------------------------------


@dataclass(frozen=True)
class LockedLicence:
    row: LicenceRow
    seller_id: int
    publisher_id: int
    delivery_id: int


async def lock_licence(session: AsyncSession, licence_id: int) -> LockedLicence | None:
    """The licence with its seller and publisher, locked against a concurrent block."""
    row = (
        await session.execute(
            select(
                Licence.id,
                Licence.entitlement_id,
                Licence.person_id,
                Licence.product_id,
                Licence.school_id,
                Licence.status,
                Licence.activated_at,
                Licence.expiration_date,
                Delivery.seller_id,
                Product.publisher_id,
                Delivery.id,
            )
            .join(Entitlement, Entitlement.id == Licence.entitlement_id)
            .join(Delivery, Delivery.id == Entitlement.delivery_id)
            .join(Product, Product.id == Licence.product_id)
            .where(Licence.id == licence_id)
            .with_for_update(of=Licence)
        )
    ).first()
    if row is None:
        return None
    return LockedLicence(
        LicenceRow(
            id=row[0],
            entitlement_id=row[1],
            person_id=row[2],
            product_id=row[3],
            school_id=row[4],
            status=LicenceStatus(row[5]),
            activated_at=row[6],
            expiration_date=row[7],
        ),
        seller_id=row[8],
        publisher_id=row[9],
        delivery_id=row[10],
    )


async def change_licence(
    session: AsyncSession, locked: LockedLicence, action: LicenceAction, actor: Actor, today: date
) -> LicenceRow:
    """Block or unblock one licence through the state machine; event and audit row in
    the same transaction. Raises ``TransitionNotAllowed`` (99)."""
    new = transition(locked.row.status, action)
    await session.execute(
        update(Licence)
        .where(Licence.id == locked.row.id)
        .values(status=new.value, updated_at=func.now())
    )
    watching = (
        await watchers(session, locked.row.school_id, today)
        if locked.row.school_id is not None
        else []
    )
    if locked.publisher_id != locked.seller_id:
        watching.insert(0, {"supplierId": locked.publisher_id, "role": "LICENSOR"})
    await record_events(
        session,
        actor,
        [
            EventRow(
                kind=LICENCE_EVENT[action],
                school_id=locked.row.school_id,
                status=new.value,
                delivery_id=locked.delivery_id,
                entitlement_id=locked.row.entitlement_id,
                licence_id=locked.row.id,
                payload={"recipients": recipients(locked.seller_id, watching)},
            )
        ],
    )
    await audit(
        session,
        actor,
        f"licence.{action.value.lower()}",
        "licence",
        locked.row.id,
        school_id=locked.row.school_id,
        detail={"from": locked.row.status.value, "to": new.value},
    )
    return replace(locked.row, status=new)


# --- reads -----------------------------------------------------------------------------------


def holders_statement(school_ids: Sequence[int], product: ProductRef, today: date) -> Any:
    """Licences at the school that give access to the product today: on the product
    itself or on a set or combi containing it, ACTIVATED, not past expirationDate,
    and on an entitlement that is not BLOCKED."""
    return (
        select(Licence)
        .join(Entitlement, Entitlement.id == Licence.entitlement_id)
        .where(
            Licence.school_id.in_(school_ids),
            Licence.product_id.in_(product.ids),
            Licence.status == LicenceStatus.ACTIVATED.value,
            Licence.expiration_date >= today,
            Licence.person_id.is_not(None),
            Entitlement.status != EntitlementStatus.BLOCKED.value,
        )
    )
