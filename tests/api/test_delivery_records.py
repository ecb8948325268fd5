"""What a step's event and audit rows record: the entitlement before and after the
change (issue 12 item 19), through the API on SQLite and PostgreSQL. The rows are
written after the UPDATE, which refreshes the ORM row in place; they must still
say where the entitlement came from."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditLog
from tests.api.test_delivery import PORTAL, PUBLISHER, SHOP, delivery, step, submit
from tests.conftest import GraphQLClient


async def audit_detail(session: AsyncSession, entitlement_id: str, action: str) -> Any:
    return await session.scalar(
        select(AuditLog.detail)
        .where(
            AuditLog.object_type == "entitlement",
            AuditLog.object_id == entitlement_id,
            AuditLog.action == action,
        )
        .order_by(AuditLog.id.desc())
        .limit(1)
    )


async def test_lowering_the_quantity_records_the_quantity_before_it(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    created = await submit(gql, delivery("records-quantity"))
    entitlement_id = created["delivery"]["entitlements"][0]["id"]
    answer = await step(
        gql, "entitlementLowerQuantity", entitlement_id, SHOP, "lower-1", quantity=20
    )
    assert answer["entitlement"]["quantity"] == 20
    history = await gql.data(
        "query ($id: ID!) { entitlement(id: $id) { history { kind detail } } }",
        {"id": entitlement_id},
        as_=SHOP,
    )
    (lowered,) = [
        e for e in history["entitlement"]["history"] if e["kind"] == "ENTITLEMENT_QUANTITY_LOWERED"
    ]
    assert lowered["detail"] == {"quantity": 20, "previousQuantity": 30}
    assert await audit_detail(session, entitlement_id, "entitlement.lowerQuantity") == {
        "from": 30,
        "to": 20,
    }
    # A second lowering starts from the first one's result.
    await step(gql, "entitlementLowerQuantity", entitlement_id, SHOP, "lower-2", quantity=10)
    assert await audit_detail(session, entitlement_id, "entitlement.lowerQuantity") == {
        "from": 20,
        "to": 10,
    }


@pytest.mark.parametrize(
    ("mutation", "caller", "action", "before", "after"),
    [
        ("entitlementProvision", PUBLISHER, "entitlement.provision", "ENTITLED", "PROVISIONED"),
        ("entitlementBlock", SHOP, "entitlement.block", "ENTITLED", "BLOCKED"),
        ("entitlementCancel", SHOP, "entitlement.cancel", "ENTITLED", "CANCELLED"),
    ],
)
async def test_a_status_change_records_the_status_before_it(
    gql: GraphQLClient,
    session: AsyncSession,
    mutation: str,
    caller: tuple[str, ...],
    action: str,
    before: str,
    after: str,
) -> None:
    created = await submit(gql, delivery(f"records-{mutation}"))
    entitlement_id = created["delivery"]["entitlements"][0]["id"]
    answer = await step(gql, mutation, entitlement_id, caller, f"{mutation}-1")
    assert answer["entitlement"]["status"] == after
    assert await audit_detail(session, entitlement_id, action) == {"from": before, "to": after}


async def test_link_ready_after_provision_records_provisioned_as_before(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    created = await submit(gql, delivery("records-walk"))
    entitlement_id = created["delivery"]["entitlements"][0]["id"]
    await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "walk-1")
    await step(gql, "entitlementLinkReady", entitlement_id, PORTAL, "walk-2")
    assert await audit_detail(session, entitlement_id, "entitlement.link_ready") == {
        "from": "PROVISIONED",
        "to": "LINK_READY",
    }
