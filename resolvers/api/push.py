"""The push endpoint root fields. Each field names the roles it needs and calls its
resolver."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.roles import Role
from resolvers import push as resolve
from resolvers.auth import requires
from schema.lookups import OrganisationIdentifierInput
from schema.push import (
    PushEndpoint,
    PushEndpointChangeInput,
    PushEndpointInput,
    PushEndpointPayload,
    PushEndpointRemovePayload,
    PushSeedPayload,
)

ANY = requires(Role.SELLER, Role.LICENSOR, Role.PORTAL, Role.DASHBOARD)


@strawberry.type(description="Push endpoints.")
class PushQuery:
    @strawberry.field(
        description="Your events endpoints (the operator: every supplier's) with their "
        "delivery status.",
        permission_classes=[ANY],
    )
    async def push_endpoints(self, info: Info) -> list[PushEndpoint]:
        return [PushEndpoint.from_row(r) for r in await resolve.endpoints(info)]

    @strawberry.field(description="One of your events endpoints.", permission_classes=[ANY])
    async def push_endpoint(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="It.")]
    ) -> PushEndpoint | None:
        row = await resolve.endpoint(info, id)
        return PushEndpoint.from_row(row) if row is not None else None


@strawberry.type(description="Push endpoint changes.")
class PushMutation:
    @strawberry.mutation(
        description="Register an events endpoint: from now on the gateway pushes every event "
        "its supplier may see (of the chosen kinds) to it, in the chain's envelope, and "
        "retries an unavailable receiver after 1 min, 5 min, 1 h, then pauses 24 h.",
        permission_classes=[ANY],
    )
    async def push_endpoint_register(
        self,
        info: Info,
        input: Annotated[PushEndpointInput, strawberry.argument(description="The endpoint.")],
    ) -> PushEndpointPayload:
        return await resolve.register(info, input)

    @strawberry.mutation(
        description="Change an endpoint (URL, authentication, secret, kinds, batch size, on/off).",
        permission_classes=[ANY],
    )
    async def push_endpoint_change(
        self,
        info: Info,
        input: Annotated[PushEndpointChangeInput, strawberry.argument(description="What changes.")],
    ) -> PushEndpointPayload:
        return await resolve.change(info, input)

    @strawberry.mutation(
        description="Try an unavailable endpoint again at once, ending its wait or 24-hour pause.",
        permission_classes=[ANY],
    )
    async def push_endpoint_retry_now(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="It.")]
    ) -> PushEndpointPayload:
        return await resolve.retry_now(info, id)

    @strawberry.mutation(
        description="Remove an endpoint, its stored answers and seed requests.",
        permission_classes=[ANY],
    )
    async def push_endpoint_remove(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="It.")]
    ) -> PushEndpointRemovePayload:
        return await resolve.remove(info, id)

    @strawberry.mutation(
        description="Push the current state of one school's entitlements that the supplier may "
        "see to the endpoint (the chain's initial seed), then go on with the live events.",
        permission_classes=[ANY],
    )
    async def push_seed_request(
        self,
        info: Info,
        endpoint_id: Annotated[strawberry.ID, strawberry.argument(description="The endpoint.")],
        school: Annotated[
            OrganisationIdentifierInput, strawberry.argument(description="The school.")
        ],
    ) -> PushSeedPayload:
        return await resolve.request_seed(info, endpoint_id, school)
