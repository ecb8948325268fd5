"""Declarative base with a naming convention, so constraint names are stable
across SQLite and PostgreSQL and Alembic migrations can refer to them."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Large tables get 64-bit keys on PostgreSQL; SQLite only auto-increments a plain
# INTEGER PRIMARY KEY (which is 64-bit there anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = metadata


def enum_check(
    column: str,
    enum: type[StrEnum],
    name: str | None = None,
    *,
    exclude: Iterable[StrEnum] = (),
) -> CheckConstraint:
    """A CHECK that keeps a StrEnum column to the enum's values (portable: no
    native enum types, so adding a value is a constraint change, not a type change).
    `exclude` leaves out derived values that must never be stored."""
    skipped = set(exclude)
    values = ", ".join(f"'{member.value}'" for member in enum if member not in skipped)
    return CheckConstraint(f"{column} IN ({values})", name=name or column)


def enum_column(enum: type[StrEnum], *, nullable: bool = False, **kwargs):  # type: ignore[no-untyped-def]
    length = max(len(member.value) for member in enum)
    return mapped_column(String(length), nullable=nullable, **kwargs)
