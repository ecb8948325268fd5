"""The delivery root fields: deliverySubmit, the entitlement steps, entitlement and
delivery reads. Each field names the roles it needs and calls its resolver."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.entitlements import RecipientRole
from domain.roles import Role
from resolvers import delivery as resolve
from resolvers.auth import requires
from schema.delivery import (
    Delivery,
    DeliveryInput,
    DeliverySubmitPayload,
    EntitlementChangePayload,
    EntitlementFailureInput,
    EntitlementQuantityInput,
    EntitlementStepInput,
)
from schema.types import Entitlement

SELLER = requires(Role.SELLER)
LICENSOR = requires(Role.LICENSOR)
PORTAL = requires(Role.PORTAL)
RECIPIENT = requires(Role.LICENSOR, Role.PORTAL)
INVOLVED = requires(Role.SELLER, Role.LICENSOR, Role.PORTAL, Role.DASHBOARD)


@strawberry.type(description="Delivery reads.")
class DeliveryQuery:
    @strawberry.field(
        description="One entitlement with its recipients and history; only for its seller "
        "and recipients.",
        permission_classes=[INVOLVED],
    )
    async def entitlement(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The entitlementId.")],
    ) -> Entitlement | None:
        return await resolve.entitlement(info, id)

    @strawberry.field(
        description="A delivery by id, or by the shop's referenceId (the calling shop's own).",
        permission_classes=[SELLER],
    )
    async def delivery(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID | None, strawberry.argument(description="The delivery's id.")
        ] = None,
        reference_id: Annotated[
            str | None, strawberry.argument(description="The shop's referenceId.")
        ] = None,
    ) -> Delivery | None:
        return await resolve.delivery(info, id, reference_id)


@strawberry.type(description="Delivery steps.")
class DeliveryMutation:
    @strawberry.mutation(
        description="Submit a delivery specification: each order line becomes one ENTITLED "
        "entitlement (PROVISIONED at once in the combined shop+publisher role), addressed to "
        "the licence office and to every portal and dashboard the school activated.",
        permission_classes=[SELLER],
    )
    async def delivery_submit(
        self,
        info: Info,
        input: Annotated[
            DeliveryInput, strawberry.argument(description="The delivery specification.")
        ],
    ) -> DeliverySubmitPayload:
        return await resolve.submit(info, input)

    @strawberry.mutation(
        description="Licence office: the product is prepared (ENTITLED → PROVISIONED).",
        permission_classes=[LICENSOR],
    )
    async def entitlement_provision(
        self,
        info: Info,
        input: Annotated[
            EntitlementStepInput, strawberry.argument(description="Which entitlement.")
        ],
    ) -> EntitlementChangePayload:
        return await resolve.confirm(info, input, RecipientRole.LICENSOR)

    @strawberry.mutation(
        description="Portal: the access link is placed (PROVISIONED → LINK_READY).",
        permission_classes=[PORTAL],
    )
    async def entitlement_link_ready(
        self,
        info: Info,
        input: Annotated[
            EntitlementStepInput, strawberry.argument(description="Which entitlement.")
        ],
    ) -> EntitlementChangePayload:
        return await resolve.confirm(info, input, RecipientRole.PORTAL)

    @strawberry.mutation(
        description="Licence office or portal: the step failed, with an agreed status code; "
        "the entitlement stays where it is until a corrected message succeeds.",
        permission_classes=[RECIPIENT],
    )
    async def entitlement_report_failure(
        self,
        info: Info,
        input: Annotated[
            EntitlementFailureInput, strawberry.argument(description="Which entitlement and why.")
        ],
    ) -> EntitlementChangePayload:
        return await resolve.report_failure(info, input)

    @strawberry.mutation(
        description="Shop: cancel; no new activations, existing licences keep working "
        "(code 42 for an individual entitlement with a licence).",
        permission_classes=[SELLER],
    )
    async def entitlement_cancel(
        self,
        info: Info,
        input: Annotated[
            EntitlementStepInput, strawberry.argument(description="Which entitlement.")
        ],
    ) -> EntitlementChangePayload:
        return await resolve.seller_step(info, input, "CANCEL")

    @strawberry.mutation(
        description="Shop: block; all its licences are blocked and links removed.",
        permission_classes=[SELLER],
    )
    async def entitlement_block(
        self,
        info: Info,
        input: Annotated[
            EntitlementStepInput, strawberry.argument(description="Which entitlement.")
        ],
    ) -> EntitlementChangePayload:
        return await resolve.seller_step(info, input, "BLOCK")

    @strawberry.mutation(
        description="Shop: unblock; back to the status before the block.",
        permission_classes=[SELLER],
    )
    async def entitlement_unblock(
        self,
        info: Info,
        input: Annotated[
            EntitlementStepInput, strawberry.argument(description="Which entitlement.")
        ],
    ) -> EntitlementChangePayload:
        return await resolve.seller_step(info, input, "UNBLOCK")

    @strawberry.mutation(
        description="Shop: lower the quantity of an open entitlement (code 41 when not lower "
        "or below the licences already activated).",
        permission_classes=[SELLER],
    )
    async def entitlement_lower_quantity(
        self,
        info: Info,
        input: Annotated[
            EntitlementQuantityInput,
            strawberry.argument(description="Which entitlement and the new quantity."),
        ],
    ) -> EntitlementChangePayload:
        return await resolve.lower_quantity(info, input)
