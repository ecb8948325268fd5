"""The activation use case (In gebruik nemen, DOMAIN.md §6): for each click, gather
the facts, ask the decision tree (`domain.activation.decide`), and register the
licence it grants, exactly, however many clicks race for the last seats.

`activate_batch` takes the clicks one process received together (one on SQLite or
inside a caller's transaction, a few dozen at 08:30 on PostgreSQL) and:

1. answers a repeated referenceId with the stored answer (another message under the
   same id is a `ReferenceConflict`);
2. reads every click's facts (one statement on PostgreSQL) and decides; a click that
   creates no licence (a denial, an existing licence) is answered from these facts;
3. in one transaction: claims the referenceIds, locks the candidate entitlements of
   the clicks that would create a licence and their persons' licences on the
   clicks' products, reads those licences again and
   decides each click again, in arrival order, on the rows as they are now, counting
   the seats and codes taken by the clicks before it; then registers every licence
   at once (one seat update per entitlement, licences, events, audit rows) and stores
   each referenced answer. A block, a lower quantity or another process's batch that
   got there first is seen under the lock and decides the click's answer;
4. a click whose person already registers in this batch (a double click) is decided
   again in the next batch, where it finds the licence.

Every click gets its own decision, its own answer, its own event and, with a
referenceId, its own idempotency record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.activation import (
    Gathered,
    HeldLicence,
    LicenceRow,
    Registration,
    SeatState,
    reassemble,
    recipients,
)
from db.activation_orm import OrmActivationStore
from db.activation_pg import PgActivationStore, SessionExecutor
from db.idempotency import ReferenceConflict
from domain.activation import Decision, Rule, decide
from domain.licences import LicenceStatus
from services.unit_of_work import RETRY, ActivationStore, Answered, Click, Retry

Result = Answered | ReferenceConflict | Retry


def answer(decision: Decision, licence: LicenceRow | None, created: bool) -> dict[str, Any]:
    """The outcome as JSON: what the payload is built from and what a repeated
    referenceId gets back."""
    return {
        "granted": decision.granted,
        "rule": decision.rule.value,
        "code": int(decision.code),
        "reason": decision.reason,
        "entitlementId": decision.entitlement_id,
        "licenceId": decision.licence_id,
        "passedOver": [
            [entitlement_id, rule.value] for entitlement_id, rule in decision.passed_over
        ],
        "created": created,
        "licence": None
        if licence is None
        else {
            "id": licence.id,
            "entitlementId": licence.entitlement_id,
            "personId": licence.person_id,
            "productId": licence.product_id,
            "schoolId": licence.school_id,
            "status": licence.status.value,
            "activatedAt": licence.activated_at.isoformat(),
            "expirationDate": licence.expiration_date.isoformat(),
        },
    }


def _replay(click: Click, stored: tuple[str, Any]) -> Answered | ReferenceConflict:
    digest, response = stored
    assert click.reference is not None
    if digest != click.reference.digest:
        _, operation, reference_id = click.reference.key
        return ReferenceConflict(
            f"referenceId {reference_id!r} was already used for a different {operation} message"
        )
    return Answered(response, replayed=True)


def _registration(click: Click, gathered: Gathered, decision: Decision) -> Registration:
    assert decision.entitlement_id is not None
    assert gathered.person is not None
    extra = gathered.grantable[decision.entitlement_id]
    expiration_date = extra.term.expiration_date(gathered.today)
    return Registration(
        entitlement_id=decision.entitlement_id,
        person_id=gathered.person[0],
        product_id=extra.product_id,
        school_id=click.request.school_id,
        delivery_id=extra.delivery_id,
        expiration_date=expiration_date,
        actor=click.actor,
        payload={
            "rule": decision.rule.value,
            "productId": click.request.product.code,
            "expirationDate": expiration_date.isoformat(),
            "recipients": recipients(extra.seller_id, gathered.watching),
        },
        detail={"rule": decision.rule.value, "entitlementId": decision.entitlement_id},
        code_entitlee_id=extra.entitlee_id if decision.rule is Rule.ACTIVATION_CODE else None,
    )


async def activate_batch(
    store: ActivationStore, clicks: Sequence[Click], today: date
) -> list[Result]:
    """Decide and register a batch of clicks (see the module docstring); one result
    per click, in order."""
    results: list[Result | None] = [None] * len(clicks)
    keyed = [i for i, click in enumerate(clicks) if click.reference is not None]
    later: list[int] = []  # referenced clicks answered from the stored answer afterwards
    if keyed:
        stored = await store.stored(sorted({clicks[i].reference.key for i in keyed}))  # type: ignore[union-attr]
        seen = set()
        for i in keyed:
            key = clicks[i].reference.key  # type: ignore[union-attr]
            if key in stored:
                results[i] = _replay(clicks[i], stored[key])
            elif key in seen:
                later.append(i)  # the same message twice in this batch
            else:
                seen.add(key)
    todo = [i for i in range(len(clicks)) if results[i] is None and i not in later]
    gathered = dict(
        zip(todo, await store.gather([clicks[i].request for i in todo], today), strict=True)
    )

    answers: dict[int, dict[str, Any]] = {}
    wanting: list[int] = []
    for i in todo:
        facts = gathered[i]
        decision = decide(facts.facts)
        if decision.creates_licence:
            wanting.append(i)
        else:
            held = facts.licences.get(decision.licence_id) if decision.licence_id else None
            answers[i] = answer(decision, held, False)

    refs = [i for i in todo if clicks[i].reference is not None]
    registered = False
    if wanting or refs:
        async with store.transaction():
            if refs:
                claimed = await store.claim(
                    [(clicks[i].reference.key, clicks[i].reference.digest) for i in refs]  # type: ignore[union-attr]
                )
                lost = {i for i in refs if clicks[i].reference.key not in claimed}  # type: ignore[union-attr]
                later += sorted(lost)
                wanting = [i for i in wanting if i not in lost]
                refs = [i for i in refs if i not in lost]
            if wanting:
                registered = await _register(store, clicks, gathered, wanting, answers, results)
            if refs:
                await store.remember(
                    [(clicks[i].reference.key, answers[i]) for i in refs if i in answers]  # type: ignore[union-attr]
                )
                retried = [clicks[i].reference.key for i in refs if i not in answers]  # type: ignore[union-attr]
                if retried:
                    await store.release(retried)
        if registered:
            await store.committed()
    for i, found in answers.items():
        results[i] = Answered(found)
    if later:
        stored = await store.stored(sorted({clicks[i].reference.key for i in later}))  # type: ignore[union-attr]
        for i in later:
            key = clicks[i].reference.key  # type: ignore[union-attr]
            results[i] = _replay(clicks[i], stored[key]) if key in stored else RETRY
    return [RETRY if result is None else result for result in results]


async def _register(
    store: ActivationStore,
    clicks: Sequence[Click],
    gathered: dict[int, Gathered],
    wanting: list[int],
    answers: dict[int, dict[str, Any]],
    results: list[Result | None],
) -> bool:
    """Under the entitlements' locks: decide each wanting click again and register
    the licences. Returns whether any licence was written."""
    candidates = sorted({c.id for i in wanting for c, _ in gathered[i].candidates})
    # The persons' licences on the clicks' products too: the same pupil may click
    # through two schools (two entitlements, no seat in common) in two processes.
    holders = sorted(
        {(gathered[i].person[0], p) for i in wanting for p in clicks[i].request.product.ids}  # type: ignore[index]
    )
    seats: dict[int, SeatState] = await store.lock(candidates, holders)
    persons = sorted({gathered[i].person[0] for i in wanting})  # type: ignore[index]
    products = sorted({p for i in wanting for p in clicks[i].request.product.ids})
    entitlees = sorted(
        {
            extra.entitlee_id
            for i in wanting
            for _, extra in gathered[i].candidates
            if extra.entitlee_id is not None
        }
    )
    held, codes = await store.current(persons, products, entitlees)

    def again(i: int, held: Sequence[HeldLicence]) -> tuple[Gathered, Decision]:
        person_id = gathered[i].person[0]  # type: ignore[index]
        product_ids = set(clicks[i].request.product.ids)
        mine = [h for h in held if h[0].person_id == person_id and h[0].product_id in product_ids]
        fresh = reassemble(gathered[i], seats, mine, codes)
        return fresh, decide(fresh.facts)

    def existing(i: int, fresh: Gathered, decision: Decision) -> None:
        licence = fresh.licences.get(decision.licence_id) if decision.licence_id else None
        answers[i] = answer(decision, licence, False)

    registering: set[int] = set()
    deferred: list[int] = []
    planned: list[tuple[int, Decision, Registration]] = []
    for i in wanting:
        person_id = gathered[i].person[0]  # type: ignore[index]
        if person_id in registering:
            deferred.append(i)  # a double click: decided once the first one's licence exists
            continue
        fresh, decision = again(i, held)
        if not decision.creates_licence:
            existing(i, fresh, decision)
            continue
        registration = _registration(clicks[i], fresh, decision)
        seat = seats[registration.entitlement_id]
        seats[registration.entitlement_id] = SeatState(
            seat.status, seat.quantity, seat.licences_used + 1
        )
        if registration.code_entitlee_id is not None:
            codes[registration.code_entitlee_id] = "USED"
        registering.add(person_id)
        planned.append((i, decision, registration))
    if not planned:
        return False  # (nothing deferred either: a deferral follows a planned licence)
    created = await store.register([registration for _, _, registration in planned])
    for (i, decision, r), (licence_id, activated_at) in zip(planned, created, strict=True):
        licence = LicenceRow(
            id=licence_id,
            entitlement_id=r.entitlement_id,
            person_id=r.person_id,
            product_id=r.product_id,
            school_id=r.school_id,
            status=LicenceStatus.ACTIVATED,
            activated_at=activated_at,
            expiration_date=r.expiration_date,
        )
        answers[i] = answer(decision, licence, True)
        held.append((licence, seats[r.entitlement_id].status))
    for i in deferred:
        fresh, decision = again(i, held)
        if decision.creates_licence:
            results[i] = RETRY  # the same person on another product: the next batch
        else:
            existing(i, fresh, decision)
    return True


async def activate_one(store: ActivationStore, click: Click, today: date) -> Result:
    """One click on a store bound to the caller's transaction (SQLite, or PostgreSQL
    without the group commit)."""
    return (await activate_batch(store, [click], today))[0]


def store_for(session: AsyncSession) -> ActivationStore:
    """The store for clicks inside the session's transaction: the PostgreSQL
    statements on its connection, or the portable ones."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return PgActivationStore(SessionExecutor(session))
    return OrmActivationStore(session)
