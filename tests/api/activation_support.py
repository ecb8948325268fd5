"""What the activation tests that race real requests share: a school entitlement
with its pupils on a committed database, a click's input, and the integrity
figures (licences, the seat counter and LICENCE_ACTIVATED events must agree)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db.models import Entitlement, Event, Licence
from domain.entitlements import Variant
from tests.factories import MadePerson, make_entitlement, make_person, make_product, school_id


async def school_entitlement(
    engine: AsyncEngine, pupils: int, **entitlement: Any
) -> tuple[Any, Any, list[MadePerson]]:
    """A new product with an entitlement of 104A158 on it (SCHOOL unless `variant`
    says otherwise) and `pupils` pupils enrolled there, committed."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        school = await school_id(session, "104A158")
        product = await make_product(session)
        made = [await make_person(session, school=school) for _ in range(pupils)]
        row = await make_entitlement(
            session, product=product, school=school, **{"variant": Variant.SCHOOL, **entitlement}
        )
        await session.commit()
    return product, row, made


def click(
    product: Any, pupil: MadePerson, *, reference: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """licenceActivate's input for a pupil logging in through 104A158."""
    input: dict[str, Any] = {
        "productId": product.code,
        "school": {"value": "104A158"},
        "person": {"eckId": pupil.eck_id},
    }
    if reference is not None:
        input["referenceId"] = reference
    if code is not None:
        input["activationCode"] = code
    return input


async def counts(engine: AsyncEngine, entitlement_id: int) -> tuple[int, int, int]:
    """(licences, the entitlement's seat counter, LICENCE_ACTIVATED events)."""
    async with engine.connect() as conn:
        licences = await conn.scalar(
            select(func.count())
            .select_from(Licence)
            .where(Licence.entitlement_id == entitlement_id)
        )
        used = await conn.scalar(
            select(Entitlement.licences_used).where(Entitlement.id == entitlement_id)
        )
        events = await conn.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.entitlement_id == entitlement_id, Event.kind == "LICENCE_ACTIVATED")
        )
    return int(licences or 0), int(used or 0), int(events or 0)
