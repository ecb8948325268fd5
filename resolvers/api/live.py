"""The live progress subscriptions (websockets; `live/` runs them). Each field names
the roles it needs and calls its resolver."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.entitlements import EntitlementStatus
from domain.roles import Role
from resolvers import live
from resolvers.auth import requires
from schema.live import DeliveryProgress, DeliveryProgressEvent
from schema.lookups import OrganisationIdentifierInput

WATCHERS = requires(Role.SELLER, Role.LICENSOR, Role.PORTAL, Role.DASHBOARD, Role.SCHOOL)

AFTER = strawberry.argument(
    description="Resume: the `cursor` of the last item you processed (an event's, or the "
    "initial state's). Everything after it is replayed from the event table (up to "
    "`live_replay_days` back), then live events follow, in commit order, with nothing lost "
    "or repeated. Consent is judged for the moment each event happened: an event that "
    "happened while the school had revoked your data exchange (or had no valid processing "
    "agreement with you) is never sent, neither live nor on a replay; and a replay also "
    "needs the consent of now. Live and a replay therefore give the same events. A "
    "malformed, unknown or too old cursor is an error."
)
INITIAL_STATE = strawberry.argument(
    description="Send the current state first: every matching entitlement as an "
    "EntitlementSnapshot (all with the cursor they reflect), then the events after it. "
    "Not together with `after`."
)


@strawberry.type(
    description="Live delivery progress over websockets (graphql-transport-ws, graphql-ws). "
    'Authenticate in connection_init with {"Authorization": "Bearer <jwt>"}. A caller '
    "only receives events of entitlements it may read (seller, licence office, recipients "
    "with the school's consent, the school). When a school revokes the data exchange a "
    "subscription lives on, the subscription ends with the error CONSENT_REQUIRED "
    "(statusCode 4) naming the school and the cursor to resume from; when the token "
    "expires, the connection is closed with 4401."
)
class LiveSubscription:
    @strawberry.subscription(
        description="Every event of one delivery, one school (any RIO identifier) or one "
        "entitlement, in commit order: status changes, failures, quantity changes and "
        "licence events. Give exactly one of deliveryId, school, entitlementId.",
        permission_classes=[WATCHERS],
    )
    async def delivery_progress(
        self,
        info: Info,
        delivery_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="The delivery's id.")
        ] = None,
        school: Annotated[
            OrganisationIdentifierInput | None,
            strawberry.argument(description="The school, by any RIO identifier."),
        ] = None,
        entitlement_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="The entitlementId.")
        ] = None,
        after: Annotated[str | None, AFTER] = None,
        initial_state: Annotated[bool, INITIAL_STATE] = False,
    ) -> AsyncGenerator[DeliveryProgress, None]:
        return await live.delivery_progress(
            info, delivery_id, school, entitlement_id, after, initial_state
        )

    @strawberry.subscription(
        description="Entitlements reaching a status, across all the caller may read: portals "
        "wait for LINK_READY (or PROVISIONED, to place the link), licence offices for "
        "ENTITLED. An entitlement that reaches the status again (after an unblock, or a "
        "second portal's confirmation) is sent again.",
        permission_classes=[WATCHERS],
    )
    async def entitlements_reaching_status(
        self,
        info: Info,
        status: Annotated[
            EntitlementStatus,
            strawberry.argument(description="The status to watch for (not ENDED)."),
        ],
        after: Annotated[str | None, AFTER] = None,
        initial_state: Annotated[bool, INITIAL_STATE] = False,
    ) -> AsyncGenerator[DeliveryProgress, None]:
        return await live.entitlements_reaching_status(
            info, status, after, initial_state
        )

    @strawberry.subscription(
        description="Licence activations (in gebruik name) on entitlements the caller may "
        "read the activations of, optionally of one school.",
        permission_classes=[WATCHERS],
    )
    async def licence_activations(
        self,
        info: Info,
        school: Annotated[
            OrganisationIdentifierInput | None,
            strawberry.argument(description="Only this school (any RIO identifier)."),
        ] = None,
        after: Annotated[str | None, AFTER] = None,
    ) -> AsyncGenerator[DeliveryProgressEvent, None]:
        return await live.licence_activations(info, school, after)
