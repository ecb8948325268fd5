"""The read root fields: organisations, pupils, persons, products, entitlements,
licences. Each field names the roles it needs and calls its resolver."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.roles import Role
from resolvers import queries
from resolvers.auth import requires
from schema.filters import EntitlementFilter, LicenceFilter, OrganisationFilter, ProductFilter
from schema.lookups import (
    OrganisationIdentifierInput,
    OrganisationLookup,
    PersonIdentifierInput,
    PersonLookup,
)
from schema.types import Connection, Entitlement, Licence, Organisation, Product

ANY_ROLE = requires()
# Roles that work with pupils and their licences.
PERSON_READERS = requires(Role.LICENSOR, Role.PORTAL, Role.SIS, Role.SCHOOL, Role.SELLER)
CHAIN_READERS = requires(Role.SELLER, Role.LICENSOR, Role.PORTAL, Role.DASHBOARD, Role.SCHOOL)

First = Annotated[
    int | None, strawberry.argument(description="Page size (default 20, at most 100).")
]
After = Annotated[
    str | None, strawberry.argument(description="Cursor of the last row of the previous page.")
]


@strawberry.type(description="Lookups and lists of the read API.")
class ReadQuery:
    @strawberry.field(
        description="An organisation by the gateway's `id` or by any RIO identifier "
        "(OA_ID, OIE_CODE = BRIN4, VE_CODE = BRIN6, OB_ID, OL_CODE, BP_ID, DD_ID, AS_ID, "
        "BGE_CODE).",
        permission_classes=[ANY_ROLE],
    )
    async def organisation(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID | None, strawberry.argument(description="The gateway's id.")
        ] = None,
        identifier: Annotated[
            OrganisationIdentifierInput | None,
            strawberry.argument(description="Any identifier of the organisation."),
        ] = None,
    ) -> OrganisationLookup:
        return await queries.organisation(info, id, identifier)

    @strawberry.field(
        description="Organisations, filterable by level, name and board.",
        permission_classes=[ANY_ROLE],
    )
    async def organisations(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        filter: Annotated[
            OrganisationFilter | None, strawberry.argument(description="What to list.")
        ] = None,
    ) -> Connection[Organisation]:
        return await queries.organisations_list(info, first, after, filter)

    @strawberry.field(
        description="A pupil by ECK iD (production https://ketenid.nl/201703/… or pilot).",
        permission_classes=[PERSON_READERS],
    )
    async def pupil(
        self,
        info: Info,
        eck_id: Annotated[str, strawberry.argument(description="The pupil's ECK iD.")],
    ) -> PersonLookup:
        return await queries.pupil(info, eck_id)

    @strawberry.field(
        description="A pupil or teacher by a secondary identifier (NEPRI, NEPPI, BPI, ASI, "
        "eduID) or ECK iD.",
        permission_classes=[PERSON_READERS],
    )
    async def person(
        self,
        info: Info,
        identifier: Annotated[
            PersonIdentifierInput,
            strawberry.argument(description="Scheme and value (and school, for ASI)."),
        ],
    ) -> PersonLookup:
        return await queries.person(info, identifier)

    @strawberry.field(description="The product catalogue.", permission_classes=[ANY_ROLE])
    async def products(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        filter: Annotated[
            ProductFilter | None, strawberry.argument(description="What to list.")
        ] = None,
    ) -> Connection[Product]:
        return await queries.products_list(info, first, after, filter)

    @strawberry.field(
        description="Entitlements, filterable by school, product, delivery, status, variant.",
        permission_classes=[CHAIN_READERS],
    )
    async def entitlements(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        filter: Annotated[
            EntitlementFilter | None, strawberry.argument(description="What to list.")
        ] = None,
    ) -> Connection[Entitlement]:
        return await queries.entitlements_list(info, first, after, filter)

    @strawberry.field(
        description="Licences, filterable by school, product, pupil, entitlement, status.",
        permission_classes=[CHAIN_READERS],
    )
    async def licences(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        filter: Annotated[
            LicenceFilter | None, strawberry.argument(description="What to list.")
        ] = None,
    ) -> Connection[Licence]:
        return await queries.licences_list(info, first, after, filter)
