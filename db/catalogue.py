"""Product catalogue reads (products, their components) and the school's own
periods, subjects and groups."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Product, ProductComponent, SchoolPeriod, SchoolSubject, TeachingGroup
from domain.products import ProductType


async def products_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, Product]:
    rows = await session.scalars(select(Product).where(Product.id.in_(ids)))
    return {row.id: row for row in rows}


async def product_by_code(session: AsyncSession, code: str) -> Product | None:
    return await session.scalar(select(Product).where(Product.code == code))


async def components_for(session: AsyncSession, ids: list[int]) -> dict[int, list[Product]]:
    rows = await session.execute(
        select(ProductComponent.product_id, Product)
        .join(Product, Product.id == ProductComponent.component_id)
        .where(ProductComponent.product_id.in_(ids))
        .order_by(Product.code)
    )
    found: dict[int, list[Product]] = defaultdict(list)
    for product_id, component in rows:
        found[product_id].append(component)
    return found


def product_list_statement(
    *, type: ProductType | None, publisher_id: int | None, name_contains: str | None
) -> Select[Any]:
    statement = select(Product)
    if type is not None:
        statement = statement.where(Product.type == type.value)
    if publisher_id is not None:
        statement = statement.where(Product.publisher_id == publisher_id)
    if name_contains:
        statement = statement.where(Product.name.ilike(f"%{name_contains}%"))
    return statement


async def subjects_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, SchoolSubject]:
    rows = await session.scalars(select(SchoolSubject).where(SchoolSubject.id.in_(ids)))
    return {row.id: row for row in rows}


async def groups_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, TeachingGroup]:
    rows = await session.scalars(select(TeachingGroup).where(TeachingGroup.id.in_(ids)))
    return {row.id: row for row in rows}


async def periods_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, SchoolPeriod]:
    rows = await session.scalars(select(SchoolPeriod).where(SchoolPeriod.id.in_(ids)))
    return {row.id: row for row in rows}
