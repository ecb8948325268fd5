"""Confirmations that race: the same message twice at once, and two portals
confirming at the same moment, end in one correct state with nothing lost.
Real concurrent requests through the ASGI app on a committed database."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from db.models import Event
from tests.api.test_delivery import (
    LMS,
    PORTAL,
    PUBLISHER,
    SHOP,
    STEP_FIELDS,
    SUBMIT,
    delivery,
)
from tests.conftest import LiveGateway

STEP = """mutation ($input: EntitlementStepInput!) {{ {name}(input: $input) {{ {fields} }} }}"""


async def _entitlement(live: LiveGateway, ref: str) -> str:
    data = await live.execute(SUBMIT, {"input": delivery(ref)}, as_=SHOP)
    return data["deliverySubmit"]["delivery"]["entitlements"][0]["id"]  # type: ignore[no-any-return]


async def _step(live: LiveGateway, name: str, entitlement_id: str, ref: str, who: tuple) -> dict:
    query = STEP.format(name=name, fields=STEP_FIELDS)
    data = await live.execute(
        query, {"input": {"entitlementId": entitlement_id, "referenceId": ref}}, as_=who
    )
    return data[name]  # type: ignore[no-any-return]


async def _events(live: LiveGateway, entitlement_id: str, kind: str) -> int:
    async with live.engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.entitlement_id == int(entitlement_id), Event.kind == kind)
            )
        )


async def test_same_confirmation_twice_at_once_is_processed_once(live: LiveGateway) -> None:
    for round_ in range(5):
        entitlement_id = await _entitlement(live, f"dup-{round_}")
        answers = await asyncio.gather(
            *[
                _step(live, "entitlementProvision", entitlement_id, f"lk-dup-{round_}", PUBLISHER)
                for _ in range(4)
            ]
        )
        assert {a["__typename"] for a in answers} == {"EntitlementChanged"}, answers
        assert sorted(a["replayed"] for a in answers) == [False, True, True, True]
        assert {a["entitlement"]["status"] for a in answers} == {"PROVISIONED"}
        assert await _events(live, entitlement_id, "ENTITLEMENT_PROVISIONED") == 1


async def test_two_portals_confirming_at_once_both_count(live: LiveGateway) -> None:
    for round_ in range(5):
        entitlement_id = await _entitlement(live, f"two-{round_}")
        await _step(live, "entitlementProvision", entitlement_id, f"p-{round_}", PUBLISHER)
        first, second = await asyncio.gather(
            _step(live, "entitlementLinkReady", entitlement_id, f"a-{round_}", PORTAL),
            _step(live, "entitlementLinkReady", entitlement_id, f"b-{round_}", LMS),
        )
        assert first["__typename"] == second["__typename"] == "EntitlementChanged"
        final = await live.execute(
            "query ($id: ID!) { entitlement(id: $id) { status version: id "
            "recipients { role state supplier { code } } } }",
            {"id": entitlement_id},
            as_=SHOP,
        )
        portals = {
            r["supplier"]["code"]: r["state"]
            for r in final["entitlement"]["recipients"]
            if r["role"] == "PORTAL"
        }
        assert final["entitlement"]["status"] == "LINK_READY"
        assert portals == {"demo-portal": "CONFIRMED", "demo-lms": "CONFIRMED"}
        assert await _events(live, entitlement_id, "ENTITLEMENT_LINK_READY") == 2


async def test_cancel_and_block_racing_leave_one_consistent_state(live: LiveGateway) -> None:
    for round_ in range(5):
        entitlement_id = await _entitlement(live, f"race-{round_}")
        cancel, block = await asyncio.gather(
            _step(live, "entitlementCancel", entitlement_id, f"c-{round_}", SHOP),
            _step(live, "entitlementBlock", entitlement_id, f"b-{round_}", SHOP),
        )
        final = await live.execute(
            "query ($id: ID!) { entitlement(id: $id) { status } }", {"id": entitlement_id}, as_=SHOP
        )
        # Whichever ran second saw the first's result: cancel-then-block ends BLOCKED;
        # block-then-cancel refuses the cancel.
        assert final["entitlement"]["status"] == "BLOCKED"
        assert block["__typename"] == "EntitlementChanged"
        assert cancel["__typename"] in {"EntitlementChanged", "TransitionNotAllowedError"}
