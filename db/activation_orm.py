"""The activation store on portable SQLAlchemy statements (SQLite, the embedded
default): the same facts and writes as `db/activation_pg.py`, one click at a time.

SQLite serialises writers: the caller's transaction takes the write lock at BEGIN
(BEGIN IMMEDIATE, db/engine.py), before the facts are read, so no other writer can
change them before the commit, and `lock` and `current` answer from the rows read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, literal, or_, select, union, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db import idempotency
from db.activation import (
    LICENCE_COLUMNS,
    OPEN_VARIANTS,
    ActivationRequest,
    Candidate,
    Gathered,
    HeldLicence,
    Memberships,
    Registration,
    SeatState,
    assemble,
    candidate,
    held_licence,
    watchers,
)
from db.models import (
    Delivery,
    Enrolment,
    Entitlee,
    Entitlement,
    GroupMembership,
    Licence,
    Person,
    PersonIdentifier,
    ProcessedMessage,
    SchoolPeriod,
    SubjectEnrolment,
    TeachingGroup,
)
from db.outbox import EventRow, audit, record_events
from domain.entitlements import ActivationCodeState
from domain.events import EventKind
from domain.identifiers import is_school_scoped
from domain.licences import LicenceStatus
from domain.persons import PersonKind

ReferenceKey = tuple[int, str, str]


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
    """Resolve by the identifiers in the order given (ECK iD first)."""
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
    for scheme, value in keys:
        if (scheme.value, value) in found:
            person_id, kind = found[(scheme.value, value)]
            return person_id, PersonKind(kind)
    return None


def _memberships_statement() -> Any:
    """The person's schools (S), groups (G) and subjects (J) in periods containing today."""
    person: Any = bindparam("person_id")
    day: Any = bindparam("today")
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


async def _memberships(session: AsyncSession, person_id: int, today: date) -> Memberships:
    found: dict[str, set[int]] = {"S": set(), "G": set(), "J": set()}
    for kind, value in await session.execute(
        _MEMBERSHIPS, {"person_id": person_id, "today": today}
    ):
        found[kind].add(value)
    return frozenset(found["S"]), frozenset(found["G"]), frozenset(found["J"])


_LICENCES = (
    select(*LICENCE_COLUMNS, Entitlement.status)
    .join(Entitlement, Entitlement.id == Licence.entitlement_id)
    .where(
        Licence.person_id.in_(bindparam("person_ids", expanding=True)),
        Licence.product_id.in_(bindparam("product_ids", expanding=True)),
    )
)


async def _licences(
    session: AsyncSession, person_ids: Sequence[int], product_ids: Sequence[int]
) -> list[HeldLicence]:
    rows = await session.execute(
        _LICENCES, {"person_ids": list(person_ids), "product_ids": list(product_ids)}
    )
    return [held_licence(r) for r in rows]


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
    """Candidate entitlements on the product (or a set/combi containing it): open ones
    of the login school, individual ones naming the person, the one whose code was
    entered."""
    product_ids: Any = bindparam("product_ids", expanding=True)
    person: Any = bindparam("person_id")
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


async def _candidates(
    session: AsyncSession, request: ActivationRequest, person_id: int
) -> tuple[list[Candidate], bool]:
    """Candidate entitlements, and whether the entered code exists at all."""
    code = request.activation_code
    params: dict[str, Any] = {
        "product_ids": list(request.product.ids),
        "person_id": person_id,
        "school_id": request.school_id,
    }
    if code is not None:
        params["code"] = code
    found: list[Candidate] = []
    code_seen = False
    for row in await session.execute(_CANDIDATES[code is not None], params):
        entitlee_id, code_state = (row[16], row[17]) if code is not None else (None, None)
        code_seen = code_seen or entitlee_id is not None
        found.append(candidate(row, entitlee_id, code_state))
    known = code_seen
    if code is not None and not code_seen:
        known = (await session.scalar(_CODE_KNOWN, {"code": code})) is not None
    return found, known


class OrmActivationStore:
    """`services.unit_of_work.ActivationStore` on a session inside the caller's
    transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._seats: dict[int, SeatState] = {}
        self._held: list[HeldLicence] = []
        self._codes: dict[int, str | None] = {}

    async def gather(self, requests: Sequence[ActivationRequest], today: date) -> list[Gathered]:
        return [await self._gather(request, today) for request in requests]

    async def _gather(self, request: ActivationRequest, today: date) -> Gathered:
        session = self.session
        person = await _person(session, request)
        if person is None:
            return assemble(request, today, None)
        memberships = await _memberships(session, person[0], today)
        held = await _licences(session, [person[0]], request.product.ids)
        candidates, code_known = await _candidates(session, request, person[0])
        watching = await watchers(session, request.school_id, today) if candidates else []
        self._held += held
        for c, extra in candidates:
            self._seats[c.id] = SeatState(c.status, c.quantity, c.licences_used)
            if extra.entitlee_id is not None:
                state = c.activation_code_state
                self._codes[extra.entitlee_id] = state.value if state else None
        return assemble(request, today, person, memberships, held, candidates, code_known, watching)

    async def stored(self, keys: Sequence[ReferenceKey]) -> dict[ReferenceKey, tuple[str, Any]]:
        found: dict[ReferenceKey, tuple[str, Any]] = {}
        for key in keys:
            row = await self.session.get(ProcessedMessage, key)
            if row is not None:
                found[key] = (row.request_hash, row.response)
        return found

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield  # the caller's

    async def claim(self, refs: Sequence[tuple[ReferenceKey, str]]) -> set[ReferenceKey]:
        for (supplier_id, operation, reference_id), digest in refs:
            await idempotency.remember(
                self.session, supplier_id, operation, reference_id, digest, {}
            )
        return {key for key, _ in refs}

    async def lock(
        self, entitlement_ids: Sequence[int], holders: Sequence[tuple[int, int]] = ()
    ) -> dict[int, SeatState]:
        # The transaction began IMMEDIATE (db/engine.py) before the facts were read:
        # no other writer has changed them since, so they are the rows as they are now
        # (the holders' licences too: nothing else to lock).
        return {i: self._seats[i] for i in entitlement_ids if i in self._seats}

    async def current(
        self,
        person_ids: Sequence[int],
        product_ids: Sequence[int],
        entitlee_ids: Sequence[int],
    ) -> tuple[list[HeldLicence], dict[int, str | None]]:
        return list(self._held), {i: self._codes[i] for i in entitlee_ids if i in self._codes}

    async def register(self, registrations: Sequence[Registration]) -> list[tuple[int, datetime]]:
        session = self.session
        created: list[tuple[int, datetime]] = []
        for r in registrations:
            await session.execute(
                update(Entitlement)
                .where(Entitlement.id == r.entitlement_id)
                .values(licences_used=Entitlement.licences_used + 1)
            )
            if r.code_entitlee_id is not None:
                await session.execute(
                    update(Entitlee)
                    .where(Entitlee.id == r.code_entitlee_id)
                    .values(code_state=ActivationCodeState.USED.value, person_id=r.person_id)
                )
            licence_id, activated_at = (
                await session.execute(
                    insert(Licence)
                    .values(
                        entitlement_id=r.entitlement_id,
                        person_id=r.person_id,
                        product_id=r.product_id,
                        school_id=r.school_id,
                        status=LicenceStatus.ACTIVATED.value,
                        expiration_date=r.expiration_date,
                    )
                    .returning(Licence.id, Licence.activated_at)
                )
            ).one()
            await record_events(
                session,
                r.actor,
                [
                    EventRow(
                        kind=EventKind.LICENCE_ACTIVATED,
                        school_id=r.school_id,
                        status=LicenceStatus.ACTIVATED.value,
                        delivery_id=r.delivery_id,
                        entitlement_id=r.entitlement_id,
                        licence_id=licence_id,
                        payload=r.payload,
                    )
                ],
            )
            await audit(
                session,
                r.actor,
                "licence.activate",
                "licence",
                licence_id,
                school_id=r.school_id,
                detail=r.detail,
            )
            created.append((licence_id, activated_at))
        return created

    async def remember(self, answers: Sequence[tuple[ReferenceKey, dict[str, Any]]]) -> None:
        for key, answer in answers:
            await idempotency.answer(self.session, *key, answer)

    async def release(self, keys: Sequence[ReferenceKey]) -> None:
        for key in keys:
            row = await self.session.get(ProcessedMessage, key)
            if row is not None:
                await self.session.delete(row)

    async def committed(self) -> None:
        """Nothing to do: `record_events` marked the session, whose commit wakes the
        live broker."""
