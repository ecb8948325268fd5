"""Supplier registry reads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Supplier, SupplierRole
from domain.roles import Role


async def by_code(session: AsyncSession, code: str) -> tuple[int, frozenset[Role]] | None:
    """The supplier's id and registered roles, in one statement."""
    rows = (
        await session.execute(
            select(Supplier.id, SupplierRole.role)
            .outerjoin(SupplierRole, SupplierRole.supplier_id == Supplier.id)
            .where(Supplier.code == code)
        )
    ).all()
    if not rows:
        return None
    return rows[0][0], frozenset(Role(role) for _, role in rows if role is not None)


async def by_ids(session: AsyncSession, ids: list[int]) -> dict[int, Supplier]:
    rows = await session.scalars(select(Supplier).where(Supplier.id.in_(ids)))
    return {row.id: row for row in rows}
