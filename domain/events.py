"""The events every state change produces (DOMAIN.md §8).

An event is written in the same transaction as the change it reports, so a
subscriber sees exactly the committed history. The kinds below are the chain's
vocabulary for "what happened"; which status an event carries is the new status
of the entitlement or licence.
"""

from __future__ import annotations

from enum import StrEnum

from domain.entitlements import EntitlementAction
from domain.licences import LicenceAction


class EventKind(StrEnum):
    ENTITLEMENT_CREATED = "ENTITLEMENT_CREATED"
    ENTITLEMENT_PROVISIONED = "ENTITLEMENT_PROVISIONED"
    ENTITLEMENT_LINK_READY = "ENTITLEMENT_LINK_READY"
    ENTITLEMENT_FAILED = "ENTITLEMENT_FAILED"
    ENTITLEMENT_CANCELLED = "ENTITLEMENT_CANCELLED"
    ENTITLEMENT_BLOCKED = "ENTITLEMENT_BLOCKED"
    ENTITLEMENT_UNBLOCKED = "ENTITLEMENT_UNBLOCKED"
    ENTITLEMENT_QUANTITY_LOWERED = "ENTITLEMENT_QUANTITY_LOWERED"
    LICENCE_ACTIVATED = "LICENCE_ACTIVATED"
    LICENCE_BLOCKED = "LICENCE_BLOCKED"
    LICENCE_UNBLOCKED = "LICENCE_UNBLOCKED"

    @property
    def about_licence(self) -> bool:
        return self.value.startswith("LICENCE_")


ENTITLEMENT_EVENT: dict[EntitlementAction, EventKind] = {
    EntitlementAction.PROVISION: EventKind.ENTITLEMENT_PROVISIONED,
    EntitlementAction.LINK_READY: EventKind.ENTITLEMENT_LINK_READY,
    EntitlementAction.CANCEL: EventKind.ENTITLEMENT_CANCELLED,
    EntitlementAction.BLOCK: EventKind.ENTITLEMENT_BLOCKED,
    EntitlementAction.UNBLOCK: EventKind.ENTITLEMENT_UNBLOCKED,
}

LICENCE_EVENT: dict[LicenceAction, EventKind] = {
    LicenceAction.BLOCK: EventKind.LICENCE_BLOCKED,
    LicenceAction.UNBLOCK: EventKind.LICENCE_UNBLOCKED,
}
