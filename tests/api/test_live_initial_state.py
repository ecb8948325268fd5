"""An initial state and its cursor come from one consistent read (issue 13.2): the
state reflects exactly the events the cursor covers, so resuming after the cursor
repeats none of them and loses none, also while events are being written and an
older event writer is still open (PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from db import events
from db.engine import create_sessionmaker
from domain.events import EventKind
from tests.api.test_delivery import SHOP
from tests.api.test_live import LiveApp, lower, new_delivery
from tests.api.test_live import live_app as live_app  # noqa: F401  (the module's gateway)
from tests.api.test_live_horizon import _record_open

STATE = """subscription ($delivery: ID, $after: String, $initial: Boolean! = false) {
  deliveryProgress(deliveryId: $delivery, after: $after, initialState: $initial) {
    __typename
    ... on DeliveryProgressEvent { cursor kind entitlementId detail }
    ... on EntitlementSnapshot { cursor entitlement { id quantity } } } }"""


async def _state(gw: LiveApp, delivery_id: str, lines: int) -> tuple[dict[str, int], str]:
    """An initial state (quantity per entitlement) and its cursor; unsubscribed."""
    stream = await gw.subscribe(STATE, {"delivery": delivery_id, "initial": True}, as_=SHOP)
    items = await stream.take(lines)
    await stream.close()
    assert {i["__typename"] for i in items} == {"EntitlementSnapshot"}
    (cursor,) = {i["cursor"] for i in items}
    return {i["entitlement"]["id"]: i["entitlement"]["quantity"] for i in items}, cursor


async def test_resuming_after_an_initial_state_repeats_nothing_it_reflects(
    live_app: LiveApp,  # noqa: F811
) -> None:
    """An older event writer is open while a later change commits: the state shows
    the later change; the cursor reflects it, so a resume brings the older writer's
    event and then only what comes after, never the reflected one again."""
    gw = live_app
    if not gw.backend.is_postgres:
        pytest.skip("PostgreSQL behaviour: SQLite serialises writers")
    delivery_id, (first, second) = await new_delivery(gw, lines=2)
    async with create_sessionmaker(gw.engine)() as writer:
        await _record_open(writer, int(first), 1000)  # the older writer, still open
        await lower(gw, second, 29)  # committed, waits behind it in the stream
        quantities, cursor = await _state(gw, delivery_id, 2)
        assert quantities[second] == 29  # the state reflects the later change
        cut = events.decode_cut(cursor)
        (lowered,) = [
            r.id
            for r in await gw.stream_events(entitlement_id=int(second))
            if r.kind == EventKind.ENTITLEMENT_QUANTITY_LOWERED.value
        ]
        assert lowered in cut.reflected
        await writer.commit()
    resumed = await gw.subscribe(STATE, {"delivery": delivery_id, "after": cursor}, as_=SHOP)
    (older,) = await resumed.take(1)
    assert (older["entitlementId"], older["detail"]) == (first, {"quantity": 1000})
    await lower(gw, second, 28)
    (later,) = await resumed.take(1)
    assert (later["entitlementId"], later["detail"]["quantity"]) == (second, 28)
    await resumed.close()


async def test_initial_states_taken_during_writes_resume_exactly(
    live_app: LiveApp,  # noqa: F811
) -> None:
    """States taken while a writer lowers the quantity step by step: after each
    state's cursor come exactly the lowerings the state does not show yet."""
    gw = live_app
    delivery_id, (entitlement_id,) = await new_delivery(gw)
    final = 10
    done = asyncio.Event()

    async def writer() -> None:
        for quantity in range(29, final - 1, -1):
            await lower(gw, entitlement_id, quantity)
        done.set()

    writing = asyncio.create_task(writer())
    states: list[tuple[int, str]] = []
    while not done.is_set():
        quantities, cursor = await _state(gw, delivery_id, 1)
        states.append((quantities[entitlement_id], cursor))
    await writing
    assert len(states) >= 2
    for quantity, cursor in states:
        expected = list(range(quantity - 1, final - 1, -1))
        resumed = await gw.subscribe(STATE, {"delivery": delivery_id, "after": cursor}, as_=SHOP)
        got: list[Any] = [i["detail"]["quantity"] for i in await resumed.take(len(expected))]
        await resumed.close()
        assert got == expected, (quantity, got)


@pytest.mark.parametrize(
    "cursor",
    [
        "ZXY6MToyOjM6NA",  # ev:1:2:3:4, too many parts
        events.cut_cursor(events.Cut((1, 2), frozenset(range(3, 3 + events.MAX_REFLECTED + 1)))),
        events.cut_cursor(events.Cut((2**63, 1))),
        "A" * 20_000,
    ],
    ids=["parts", "too-many-reflected", "beyond-64-bits", "too-long"],
)
def test_a_malformed_cut_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(events.InvalidCursor, match="malformed event cursor"):
        events.decode_cut(cursor)


def test_a_cut_cursor_round_trips() -> None:
    cut = events.Cut((12, 34), frozenset({40, 38}))
    assert events.decode_cut(events.cut_cursor(cut)) == cut
    assert events.cut_cursor(events.Cut((12, 34))) == events.event_cursor(12, 34)
