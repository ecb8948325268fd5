"""Supplier registry reads."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, String, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Supplier, SupplierRole, SupplierSchool
from domain.roles import Role


@dataclass(frozen=True)
class Registration:
    """What the registry says of a supplier: its id, its roles and, for a school
    account, the schools (organisation ids) it may speak for."""

    supplier_id: int
    roles: frozenset[Role]
    schools: frozenset[int]


async def registration(session: AsyncSession, code: str) -> Registration | None:
    """The supplier's registration in one statement (roles and schools as rows of
    their own, so a board's hundred schools are not multiplied by the roles)."""
    roles = (
        select(Supplier.id, SupplierRole.role, null().cast(Integer).label("school"))
        .outerjoin(SupplierRole, SupplierRole.supplier_id == Supplier.id)
        .where(Supplier.code == code)
    )
    schools = (
        select(Supplier.id, null().cast(String).label("role"), SupplierSchool.organisation_id)
        .join(SupplierSchool, SupplierSchool.supplier_id == Supplier.id)
        .where(Supplier.code == code)
    )
    rows = (await session.execute(union_all(roles, schools))).all()
    if not rows:
        return None
    return Registration(
        rows[0][0],
        frozenset(Role(role) for _, role, _s in rows if role is not None),
        frozenset(school for _, _r, school in rows if school is not None),
    )


async def register_school(session: AsyncSession, supplier_id: int, organisation_id: int) -> bool:
    """Let a school account speak for a school; False when it already may."""
    exists = await session.scalar(
        select(literal(1)).where(
            SupplierSchool.supplier_id == supplier_id,
            SupplierSchool.organisation_id == organisation_id,
        )
    )
    if exists:
        return False
    session.add(SupplierSchool(supplier_id=supplier_id, organisation_id=organisation_id))
    await session.flush()
    return True


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
