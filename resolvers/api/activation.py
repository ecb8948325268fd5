"""The activation root fields: licenceActivate, licenceBlock, licenceUnblock,
licenceHolders. Each field names the roles it needs and calls its resolver."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.licences import LicenceAction
from domain.roles import Role
from resolvers import activation as resolve
from resolvers.auth import requires
from schema.activation import (
    After,
    First,
    LicenceActivateInput,
    LicenceActivatePayload,
    LicenceChangePayload,
    LicenceStepInput,
)
from schema.lookups import OrganisationIdentifierInput
from schema.types import Connection, Licence

LICENSOR = requires(Role.LICENSOR)
LICENCE_KEEPERS = requires(Role.SELLER, Role.LICENSOR)
CHAIN_READERS = requires(Role.SELLER, Role.LICENSOR, Role.PORTAL, Role.DASHBOARD, Role.SCHOOL)


@strawberry.type(description="Activation: the licence office's decision tree and licences.")
class ActivationMutation:
    @strawberry.mutation(
        description="Run the licence office's decision tree (Beslisboom in gebruik nemen) for a "
        "click on an access link: known person → existing active licence → individual "
        "entitlement or activation code → group or subject entitlement (membership today) → "
        "school entitlement. Creates the licence (expirationDate from the licence term) when "
        "access is granted on an entitlement; a denial says which rule failed.",
        permission_classes=[LICENSOR],
    )
    async def licence_activate(
        self,
        info: Info,
        input: Annotated[LicenceActivateInput, strawberry.argument(description="The click.")],
    ) -> LicenceActivatePayload:
        return await resolve.activate(info, input)

    @strawberry.mutation(
        description="Block one licence (the seller of its entitlement, or the product's licence "
        "office). The pupil loses access; unblocking restores it.",
        permission_classes=[LICENCE_KEEPERS],
    )
    async def licence_block(
        self,
        info: Info,
        input: Annotated[LicenceStepInput, strawberry.argument(description="The licence.")],
    ) -> LicenceChangePayload:
        return await resolve.change(info, input, LicenceAction.BLOCK)

    @strawberry.mutation(
        description="Unblock one licence that was blocked by itself (a licence blocked through "
        "its blocked entitlement comes back when the entitlement is unblocked).",
        permission_classes=[LICENCE_KEEPERS],
    )
    async def licence_unblock(
        self,
        info: Info,
        input: Annotated[LicenceStepInput, strawberry.argument(description="The licence.")],
    ) -> LicenceChangePayload:
        return await resolve.change(info, input, LicenceAction.UNBLOCK)


@strawberry.type(description="Who holds a licence.")
class ActivationQuery:
    @strawberry.field(
        description="Licences that give access to a product at a school today (also through a "
        "set or combi that contains it), with their holders.",
        permission_classes=[CHAIN_READERS],
    )
    async def licence_holders(
        self,
        info: Info,
        school: Annotated[
            OrganisationIdentifierInput,
            strawberry.argument(description="The school, by any RIO identifier."),
        ],
        product_id: Annotated[
            str, strawberry.argument(description="EAN/ISBN-13 or UUID of the product.")
        ],
        first: First = None,
        after: After = None,
    ) -> Connection[Licence]:
        return await resolve.holders(info, school, product_id, first, after)
