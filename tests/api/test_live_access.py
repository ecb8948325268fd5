"""Who may subscribe to what, and who receives which event: the permission matrix's
table (tests/api/test_permission_matrix.py) applied to the Subscription fields,
and the live stream's per-event rule held equal to the list reads' SQL rule.

A subscription is checked when it starts (graphql-core's `subscribe` answers with
the errors, or with the stream); per event, `db.visibility.Facts.may_see` decides, and
it must agree with `db.access.entitlement_scope` for every caller and consent
state, or a portal would see in the stream what it cannot read, or the reverse.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import ExecutionResult, parse
from graphql import subscribe as graphql_subscribe
from sqlalchemy import select

from db import visibility
from db.access import entitlement_scope
from db.models import Entitlement, Organisation, Supplier
from domain.roles import DataType, Role
from domain.visibility import Viewer, may_see
from gateway.tokens import TokenVerifier
from live.broker import Broker
from live.context import LiveContext
from resolvers.api import schema
from resolvers.clock import today
from tests.api.test_permission_matrix import (
    CALLERS,
    SCHOOL,
    STATES,
    Operation,
    expected,
    op,
    set_consent,
)
from tests.conftest import TEST_SETTINGS, token_for

WATCHERS = {"seller", "licensor", "portal", "dashboard", "school", "operator"}

SUBSCRIPTIONS: list[Operation] = [
    op(
        "deliveryProgress",
        'subscription { deliveryProgress(school: {value: "104A158"}) { __typename } }',
        WATCHERS,
        "ENTITLEMENTS",
    ),
    # No school named: nothing to refuse at the start; every event is filtered.
    op(
        "entitlementsReachingStatus",
        "subscription { entitlementsReachingStatus(status: LINK_READY) { __typename } }",
        WATCHERS,
    ),
    op(
        "licenceActivations",
        'subscription { licenceActivations(school: {value: "104A158"}) { cursor } }',
        WATCHERS,
        "ACTIVATIONS",
    ),
]

CASES = [(o, r, s) for o in SUBSCRIPTIONS for r in CALLERS for s in STATES]


async def start(session: Any, query: str, caller: tuple[str, ...], school: str | None) -> str:
    """Start a subscription as graphql-core does; the outcome of its checks."""
    broker = Broker(TEST_SETTINGS, lambda: session)
    broker.running = True  # accepts subscribers; nothing is read in this test
    context = LiveContext(TEST_SETTINGS, lambda: session, broker=broker)
    context.caller = TokenVerifier(TEST_SETTINGS).verify(
        f"Bearer {token_for(caller[0], *caller[1:], school=school)}"
    )
    result = await graphql_subscribe(schema._schema, parse(query), context_value=context)
    if isinstance(result, ExecutionResult):
        assert result.errors
        return str(result.errors[0].extensions.get("code", "ERROR"))
    await result.aclose()  # type: ignore[attr-defined]
    return "ALLOWED"


@pytest.mark.parametrize(
    ("operation", "role", "state"), CASES, ids=[f"{o.name}-{r}-{s}" for o, r, s in CASES]
)
async def test_subscription_permission_matrix(
    session: Any, operation: Operation, role: str, state: str
) -> None:
    caller = CALLERS[role]
    if role not in {"school", "operator"}:
        await set_consent(session, caller[0], role, state)
    outcome = await start(session, operation.query, caller, SCHOOL if role == "school" else None)
    assert outcome == expected(operation, role, state)


@pytest.mark.parametrize(("role", "state"), [(r, s) for r in CALLERS for s in STATES])
async def test_the_stream_rule_is_the_list_rule(session: Any, role: str, state: str) -> None:
    caller = CALLERS[role]
    if role not in {"school", "operator"}:
        await set_consent(session, caller[0], role, state)
    supplier_id = await session.scalar(select(Supplier.id).where(Supplier.code == caller[0]))
    school_id = None
    if role == "school":
        school_id = await session.scalar(
            select(Organisation.id).where(Organisation.rio_id == SCHOOL)
        )
    roles = frozenset(Role(r) for r in caller[1:])
    viewer = Viewer(supplier_id, roles, school_id)
    every = list(await session.scalars(select(Entitlement.id)))
    facts = await visibility.load_entitlement_facts(session, every, today())
    for data_type in (DataType.ENTITLEMENTS, DataType.ACTIVATIONS):
        visible = entitlement_scope(viewer, today(), data_type)
        listed = set(await session.scalars(select(Entitlement.id).where(visible)))
        streamed = {
            entitlement_id
            for entitlement_id, involved in facts.involved.items()
            if may_see(viewer, involved, facts.consent_now(involved.school_id, today()), data_type)
        }
        assert streamed == listed, data_type
