"""Live delivery progress over websockets (DOMAIN.md §8): the Subscription fields
and the items they stream. See live/streams.py for resume and initial state."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.entitlements import EntitlementStatus
from domain.events import EventKind
from domain.privacy import redact
from domain.roles import Role
from resolvers import live
from resolvers.auth import requires
from schema.lookups import OrganisationIdentifierInput
from schema.types import Entitlement, Licence

if TYPE_CHECKING:
    from db.models import Entitlement as EntitlementRow
    from db.models import Event as EventRow
    from db.models import Licence as LicenceRow

strawberry.enum(
    EventKind,
    description="What happened: a step of an entitlement's lifecycle (created, provisioned, "
    "link ready, failed, cancelled, blocked, unblocked, quantity lowered) or of a licence's "
    "(activated, blocked, unblocked).",
)


@strawberry.type(
    description="One change, as it was committed. Events come in commit order; pass the last "
    "`cursor` you processed as `after` to resume without losing or repeating one."
)
class DeliveryProgressEvent:
    cursor: str = strawberry.field(
        description="Position in the event stream; resume after it with `after`."
    )
    kind: EventKind = strawberry.field(description="What happened.")
    status: str | None = strawberry.field(
        description="The entitlement's status after the event (a licence's, for LICENCE_ "
        "events); unchanged for ENTITLEMENT_FAILED and ENTITLEMENT_QUANTITY_LOWERED."
    )
    occurred_at: datetime = strawberry.field(description="When the change was made.")
    actor_role: str | None = strawberry.field(description="The role the actor acted in.")
    detail: JSON | None = strawberry.field(
        description="Extra facts, e.g. a failure's code and recipient, a new quantity."
    )
    entitlement_id: strawberry.ID | None = strawberry.field(
        description="The entitlement the event is about."
    )
    delivery_id: strawberry.ID | None = strawberry.field(
        description="The delivery the entitlement belongs to."
    )
    licence_id: strawberry.ID | None = strawberry.field(
        description="The licence, for LICENCE_ events."
    )
    entitlement: Entitlement = strawberry.field(
        description="The entitlement as it is when the event is delivered (later events may "
        "have changed it since; `status` is what this event set)."
    )
    licence: Licence | None = strawberry.field(
        description="The licence as it is when the event is delivered, for LICENCE_ events."
    )


@strawberry.type(
    description="The current state of one entitlement, sent first when a subscription asks "
    "for `initialState`; the events after `cursor` follow."
)
class EntitlementSnapshot:
    cursor: str = strawberry.field(
        description="The point in the stream this state reflects (the same for every item "
        "of one initial state); resume after it with `after`: exactly the events this state "
        "does not show yet follow."
    )
    entitlement: Entitlement = strawberry.field(description="The entitlement as it is now.")


DeliveryProgress = Annotated[
    DeliveryProgressEvent | EntitlementSnapshot,
    strawberry.union(
        "DeliveryProgress",
        description="An item of a delivery progress stream: an entitlement's current state "
        "(initial state only, first) or an event.",
    ),
]


def build(
    cursor: str,
    row: EventRow | None,
    entitlement: EntitlementRow | None,
    licence: LicenceRow | None,
) -> DeliveryProgressEvent | EntitlementSnapshot:
    """The schema object of one item of a stream: an event (with the entitlement and
    licence it is about, as they are when read), or, without an event, an
    entitlement's current state; `cursor` is where a resume goes on after it."""
    assert entitlement is not None  # the broker only delivers events of entitlements
    if row is None:
        return EntitlementSnapshot(cursor=cursor, entitlement=Entitlement.from_row(entitlement))
    return DeliveryProgressEvent(
        cursor=cursor,
        kind=EventKind(row.kind),
        status=row.status,
        occurred_at=row.occurred_at,
        actor_role=row.actor_role,
        detail=redact(row.payload),  # type: ignore[arg-type]  # JSON is a NewType over Any
        entitlement_id=_id(row.entitlement_id),
        delivery_id=_id(row.delivery_id),
        licence_id=_id(row.licence_id),
        entitlement=Entitlement.from_row(entitlement),
        licence=Licence.from_row(licence) if licence else None,
    )


def _id(value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


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
        return await live.delivery_progress(  # type: ignore[no-any-return]
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
        return await live.entitlements_reaching_status(  # type: ignore[no-any-return]
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
        return await live.licence_activations(info, school, after)  # type: ignore[no-any-return]


__all__ = ["DeliveryProgress", "LiveSubscription", "build"]
