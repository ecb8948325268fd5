"""Live delivery progress over websockets (DOMAIN.md §8): the Subscription fields
and the items they stream. See live/streams.py for resume and initial state."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from domain.events import EventKind
from domain.privacy import redact
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


__all__ = ["DeliveryProgress", "build"]
