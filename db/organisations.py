"""Organisation reads: lookup by any RIO identifier, relations, lists.

Most suppliers still identify schools by BRIN6, so a lookup accepts the primary
id (OB_ID, OA_ID, OL_CODE) or any secondary identifier, and reports every
organisation a value points at, so the caller can tell "unknown" from
"ambiguous" (a BRIN6 of a provider and of one of its locations)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import Organisation, OrganisationIdentifier, OrganisationRelation
from domain.identifiers import PRIMARY_SCHEME, OrgIdScheme, OrgLevel

PRIMARY_SCHEMES = {scheme: level for level, scheme in PRIMARY_SCHEME.items()}


async def by_ids(session: AsyncSession, ids: list[int]) -> dict[int, Organisation]:
    rows = await session.scalars(select(Organisation).where(Organisation.id.in_(ids)))
    return {row.id: row for row in rows}


async def find(
    session: AsyncSession, scheme: OrgIdScheme | None, value: str, level: OrgLevel | None = None
) -> list[Organisation]:
    """Every organisation `value` identifies under `scheme` (any scheme when None)."""
    by_secondary = select(OrganisationIdentifier.organisation_id).where(
        OrganisationIdentifier.value == value
    )
    if scheme is not None:
        by_secondary = by_secondary.where(OrganisationIdentifier.scheme == scheme.value)
    statement = select(Organisation)
    if scheme is None:
        statement = statement.where(
            or_(Organisation.rio_id == value, Organisation.id.in_(by_secondary))
        )
    elif scheme in PRIMARY_SCHEMES:
        statement = statement.where(
            Organisation.rio_id == value, Organisation.level == PRIMARY_SCHEMES[scheme].value
        )
    else:
        statement = statement.where(Organisation.id.in_(by_secondary))
    if level is not None:
        statement = statement.where(Organisation.level == level.value)
    return list((await session.scalars(statement.order_by(Organisation.id).limit(20))).all())


@dataclass(frozen=True)
class IdentifierRow:
    organisation_id: int
    scheme: str
    value: str


async def identifiers_for(session: AsyncSession, ids: list[int]) -> dict[int, list[IdentifierRow]]:
    rows = await session.execute(
        select(
            OrganisationIdentifier.organisation_id,
            OrganisationIdentifier.scheme,
            OrganisationIdentifier.value,
        )
        .where(OrganisationIdentifier.organisation_id.in_(ids))
        .order_by(OrganisationIdentifier.scheme, OrganisationIdentifier.value)
    )
    found: dict[int, list[IdentifierRow]] = defaultdict(list)
    for org_id, scheme, value in rows:
        found[org_id].append(IdentifierRow(org_id, scheme, value))
    return found


async def related(
    session: AsyncSession, ids: list[int], *, upwards: bool, level: OrgLevel
) -> dict[int, list[Organisation]]:
    """Parents (upwards) or children of the given organisations at `level`."""
    other = aliased(Organisation)
    own, far = (
        (OrganisationRelation.child_id, OrganisationRelation.parent_id)
        if upwards
        else (OrganisationRelation.parent_id, OrganisationRelation.child_id)
    )
    rows = await session.execute(
        select(own, other)
        .join(other, other.id == far)
        .where(own.in_(ids), other.level == level.value)
        .order_by(other.rio_id)
    )
    found: dict[int, list[Organisation]] = defaultdict(list)
    for key, organisation in rows:
        found[key].append(organisation)
    return found


def list_statement(
    *, level: OrgLevel | None, name_contains: str | None, board_id: int | None
) -> Select[Any]:
    statement = select(Organisation)
    if level is not None:
        statement = statement.where(Organisation.level == level.value)
    if name_contains:
        pattern = f"%{name_contains.lower()}%"
        statement = statement.where(Organisation.name.ilike(pattern))
    if board_id is not None:
        children = select(OrganisationRelation.child_id).where(
            OrganisationRelation.parent_id == board_id
        )
        statement = statement.where(Organisation.id.in_(children))
    return statement
