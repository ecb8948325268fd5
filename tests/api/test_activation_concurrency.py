"""Activations that race, as at 08:30 on the first school day: real concurrent
requests through the ASGI app on a committed database of their own (the `live`
fixture), repeated for several rounds with fresh data each time.

* 200 different pupils on an open entitlement with quantity 150: exactly 150
  licences, the counter at 150, and every other pupil told QUANTITY_EXHAUSTED.
* The same pupil clicking several times at once: one licence, every click answered
  with access on it.
* One activation code entered by two pupils at once: one licence, one code-used.
* Activations racing the seller's block: the counter always equals the licences.

On PostgreSQL this is the real test of the guarded seat UPDATE and the unique
licence constraint. SQLite serialises writers, so there it shows the same answers
on a database without row locks.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Entitlement
from domain.entitlements import ActivationCodeState, EntitlementStatus, Variant
from tests.api.activation_support import click, counts, school_entitlement
from tests.api.test_activation import ACTIVATE, LICENSOR
from tests.conftest import LiveGateway
from tests.factories import MadePerson


def rounds(live: LiveGateway) -> int:
    """Repeated on PostgreSQL, where the race is real; once on SQLite, which
    serialises writers."""
    return 3 if live.backend.is_postgres else 1


async def _setup(live: LiveGateway, pupils: int, **entitlement: Any) -> tuple[Any, Any, list]:
    return await school_entitlement(live.engine, pupils, **entitlement)


async def _activate(
    live: LiveGateway, product: Any, pupil: MadePerson, code: str | None = None
) -> dict[str, Any]:
    data = await live.execute(ACTIVATE, {"input": click(product, pupil, code=code)}, as_=LICENSOR)
    return data["licenceActivate"]  # type: ignore[no-any-return]


async def _counts(live: LiveGateway, entitlement_id: int) -> tuple[int, int, int]:
    return await counts(live.engine, entitlement_id)


async def test_200_pupils_at_once_on_150_seats_get_exactly_150_licences(
    live: LiveGateway,
) -> None:
    for _ in range(rounds(live)):
        product, entitlement, pupils = await _setup(live, 200, quantity=150)
        answers = await asyncio.gather(*[_activate(live, product, p) for p in pupils])
        outcome = Counter((a["__typename"], a["rule"]) for a in answers)
        assert outcome == {
            ("LicenceGranted", "SCHOOL"): 150,
            ("ActivationDenied", "QUANTITY_EXHAUSTED"): 50,
        }
        assert await _counts(live, entitlement.id) == (150, 150, 150)
        granted = [a["licence"]["id"] for a in answers if a["__typename"] == "LicenceGranted"]
        assert len(set(granted)) == 150


async def test_the_same_pupil_clicking_at_once_gets_one_licence_and_every_click_access(
    live: LiveGateway,
) -> None:
    for variant in (Variant.SCHOOL, Variant.SCHOOL_PUPIL):
        for _ in range(rounds(live)):
            product, entitlement, pupils = await _setup(live, 1, variant=variant)
            if variant is Variant.SCHOOL_PUPIL:
                async with AsyncSession(live.engine) as session:
                    from db.models import Entitlee

                    session.add(Entitlee(entitlement_id=entitlement.id, person_id=pupils[0].id))
                    await session.commit()
            answers = await asyncio.gather(*[_activate(live, product, pupils[0]) for _ in range(8)])
            assert {a["__typename"] for a in answers} == {"LicenceGranted"}, answers
            assert len({a["licence"]["id"] for a in answers}) == 1
            assert sum(a["created"] for a in answers) == 1
            assert await _counts(live, entitlement.id) == (1, 1, 1)


async def test_one_activation_code_entered_by_two_pupils_at_once_is_used_once(
    live: LiveGateway,
) -> None:
    for round_ in range(rounds(live)):
        code = f"RACE-{round_}-{id(live)}"
        product, entitlement, pupils = await _setup(
            live,
            2,
            variant=Variant.SCHOOL_PUPIL,
            codes=[(code, ActivationCodeState.UNUSED)],
        )
        answers = await asyncio.gather(*[_activate(live, product, p, code) for p in pupils])
        assert sorted(a["rule"] for a in answers) == ["ACTIVATION_CODE", "ACTIVATION_CODE_USED"]
        assert await _counts(live, entitlement.id) == (1, 1, 1)


async def test_activations_racing_a_block_keep_the_counter_equal_to_the_licences(
    live: LiveGateway,
) -> None:
    for _ in range(rounds(live)):
        product, entitlement, pupils = await _setup(live, 40, quantity=100)

        async def block(entitlement_id: int) -> None:
            await asyncio.sleep(0.005)
            async with AsyncSession(live.engine) as session, session.begin():
                await session.execute(
                    update(Entitlement)
                    .where(Entitlement.id == entitlement_id)
                    .values(
                        status=EntitlementStatus.BLOCKED.value,
                        status_before_block=EntitlementStatus.LINK_READY.value,
                    )
                )

        results = await asyncio.gather(
            *[_activate(live, product, p) for p in pupils], block(entitlement.id)
        )
        answers = [r for r in results if r is not None]
        rules = Counter(a["rule"] for a in answers)
        assert set(rules) <= {"SCHOOL", "BLOCKED"}, rules
        licences, used, events = await _counts(live, entitlement.id)
        assert licences == used == events == rules["SCHOOL"]


@pytest.mark.parametrize("clicks", [3])
async def test_a_pupil_clicking_while_the_last_seat_goes_is_told_why(
    live: LiveGateway, clicks: int
) -> None:
    product, entitlement, pupils = await _setup(live, clicks, quantity=1)
    answers = await asyncio.gather(*[_activate(live, product, p) for p in pupils])
    denied = [a for a in answers if a["__typename"] == "ActivationDenied"]
    assert len(denied) == clicks - 1
    assert {a["rule"] for a in denied} == {"QUANTITY_EXHAUSTED"}
    assert all("1 of 1" in a["message"] or "concurrent" in a["message"] for a in denied)


async def test_refused_input_is_answered_the_same_through_the_app(live: LiveGateway) -> None:
    """The app (on PostgreSQL: autocommit, lookups on the click's own connection) answers
    input problems with the same typed error as the transactional path."""
    product, _entitlement, pupils = await _setup(live, 1)
    data = await live.execute(
        ACTIVATE,
        {
            "input": {
                "productId": product.code,
                "school": {"value": "999A999"},
                "person": {"eckId": pupils[0].eck_id},
            }
        },
        as_=LICENSOR,
    )
    answer = data["licenceActivate"]
    assert answer["__typename"] == "ValidationError"
    assert [(p["code"], p["field"]) for p in answer["problems"]] == [(9, "school")]
    granted = await _activate(live, product, pupils[0])
    assert (granted["rule"], granted["created"]) == ("SCHOOL", True)
