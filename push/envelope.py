"""The chain's event envelope (SEM ecosystem specification v1.3, `Event`), built
from the gateway's events.

Every pushed event carries `id` (a UUID), `schemaVersion`, `type`, `objectId`,
`created` (when the change was committed: the event's `occurred_at`, in UTC),
`data` and `isDeleteEvent`. The `id` is derived from the event's own id
(UUID version 5 in the gateway's namespace), so an event sent again, after a
failure or a crash, carries the same id and a receiver can recognise the repeat.

Which chain `type` each event kind becomes:

* every ENTITLEMENT_ kind but FAILED (created, provisioned, link ready,
  cancelled, blocked, unblocked, quantity lowered): `mp.Entitlement`, the
  entitlement with its status after the change; objectId: the entitlement;
* ENTITLEMENT_FAILED: `mp.EntitlementConfirmation` with `success: false` and the
  recipient's code and message; objectId: the entitlement;
* LICENCE_ACTIVATED: `la.InitialActivation`; objectId: the licence;
* LICENCE_BLOCKED, LICENCE_UNBLOCKED: `mp.ChangeLicenseStatus` (`blocked`,
  `activated`); objectId: the licence.

Every kind the gateway writes has a type; the chain's other types (catalogue,
course, usage, progress, results, orders, activation codes, administration
data) describe data the gateway does not hold and are never sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from db.models import Entitlement, Event, Licence
from db.push import Lookups
from domain.entitlements import EntitlementStatus, Variant
from domain.events import EventKind
from domain.licences import LicenceStatus

SCHEMA_VERSION = "1.3.0"

#: The namespace of the gateway's event ids (UUID version 5).
NAMESPACE = uuid.UUID("6f1d5b52-3f57-4c55-9d0e-6b8c3a7e2d10")

ENTITLEMENT = "mp.Entitlement"
CONFIRMATION = "mp.EntitlementConfirmation"
INITIAL_ACTIVATION = "la.InitialActivation"
LICENCE_STATUS = "mp.ChangeLicenseStatus"

TYPE_OF: dict[EventKind, str] = {
    EventKind.ENTITLEMENT_CREATED: ENTITLEMENT,
    EventKind.ENTITLEMENT_PROVISIONED: ENTITLEMENT,
    EventKind.ENTITLEMENT_LINK_READY: ENTITLEMENT,
    EventKind.ENTITLEMENT_CANCELLED: ENTITLEMENT,
    EventKind.ENTITLEMENT_BLOCKED: ENTITLEMENT,
    EventKind.ENTITLEMENT_UNBLOCKED: ENTITLEMENT,
    EventKind.ENTITLEMENT_QUANTITY_LOWERED: ENTITLEMENT,
    EventKind.ENTITLEMENT_FAILED: CONFIRMATION,
    EventKind.LICENCE_ACTIVATED: INITIAL_ACTIVATION,
    EventKind.LICENCE_BLOCKED: LICENCE_STATUS,
    EventKind.LICENCE_UNBLOCKED: LICENCE_STATUS,
}

#: The event kinds that are pushed at all.
SENDABLE = frozenset(kind.value for kind in TYPE_OF)

#: The event kinds behind each chain type (for `GET /events?type=`).
KINDS_OF: dict[str, frozenset[str]] = {
    chain_type: frozenset(k.value for k, t in TYPE_OF.items() if t == chain_type)
    for chain_type in set(TYPE_OF.values())
}

_STATUS = {
    EntitlementStatus.ENTITLED: "entitled",
    EntitlementStatus.PROVISIONED: "provisioned",
    EntitlementStatus.LINK_READY: "link-ready",
    EntitlementStatus.CANCELLED: "cancelled",
    EntitlementStatus.BLOCKED: "blocked",
}
_VARIANT = {
    Variant.PERSONAL: "personal",
    Variant.SCHOOL: "school",
    Variant.SCHOOL_SUBJECT: "schoolsubject",
    Variant.SCHOOL_GROUP: "schoolgroup",
    Variant.SCHOOL_PUPIL: "schoolindividual",
    Variant.SCHOOL_TEACHER: "schoolteacher",
}


def message_id(event_id: int) -> str:
    """The envelope id of an event: the same on every attempt."""
    return str(uuid.uuid5(NAMESPACE, f"event:{event_id}"))


def seed_message_id(seed_id: int, entitlement_id: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"seed:{seed_id}:{entitlement_id}"))


def zulu(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def entitlement_data(
    row: Entitlement,
    lookups: Lookups,
    *,
    status: str | None = None,
    quantity: int | None = None,
    changed: datetime | None = None,
) -> dict[str, Any]:
    """The chain's `Entitlement` object for one entitlement."""
    current = EntitlementStatus(status or row.status)
    variant = Variant(row.variant)
    entitlee: dict[str, Any] = {}
    if row.school_id is not None:
        entitlee["schoolId"] = lookups.schools.get(row.school_id)
        if quantity is not None or row.quantity is not None:
            entitlee["quantity"] = quantity if quantity is not None else row.quantity
    data: dict[str, Any] = {
        "entitlementId": str(row.id),
        "schemaVersion": SCHEMA_VERSION,
        "startDate": _day(row.start_date),
        "activationUntilDate": _day(row.activation_until_date),
        "entitlementType": _VARIANT[variant],
        "productId": lookups.products.get(row.product_id),
        "entitlee": entitlee,
        "status": _STATUS.get(current, current.value.lower()),
    }
    if row.min_expiration_date is not None:
        data["minExpirationDate"] = _day(row.min_expiration_date)
    if current in (EntitlementStatus.CANCELLED, EntitlementStatus.BLOCKED) and changed:
        data["endDate"] = changed.date().isoformat()
    return data


def envelope(
    row: Event,
    entitlement: Entitlement,
    licence: Licence | None,
    lookups: Lookups,
) -> dict[str, Any]:
    """The envelope of one event of the stream."""
    kind = EventKind(row.kind)
    chain_type = TYPE_OF[kind]
    ident = message_id(row.id)
    payload = row.payload or {}
    data: dict[str, Any]
    object_id = str(entitlement.id)
    if chain_type == ENTITLEMENT:
        data = {
            "entitlementReferenceId": ident,
            "entitlement": entitlement_data(
                entitlement,
                lookups,
                status=row.status,
                quantity=payload.get("quantity") if isinstance(payload, dict) else None,
                changed=row.occurred_at,
            ),
        }
    elif chain_type == CONFIRMATION:
        data = {
            "entitlementReferenceId": ident,
            "entitlementReceiveId": ident,
            "schemaVersion": SCHEMA_VERSION,
            "entitlementId": str(entitlement.id),
            "productId": lookups.products.get(entitlement.product_id),
            "processedTimestamp": zulu(row.occurred_at),
            "newEntitlementStatus": _STATUS.get(
                EntitlementStatus(row.status or entitlement.status), "entitled"
            ),
            "success": False,
            "status": payload.get("code"),
            "statusMessage": payload.get("message"),
        }
    else:
        object_id = str(row.licence_id)
        person = licence.person_id if licence is not None else None
        eck_id = lookups.eck_ids.get(person) if person is not None else None
        if chain_type == INITIAL_ACTIVATION:
            data = {
                "entitlementId": str(entitlement.id),
                "schemaVersion": SCHEMA_VERSION,
                "productId": lookups.products.get(entitlement.product_id),
                "usageDate": row.occurred_at.date().isoformat(),
                "usageType": "initial-activation",
                "expirationDate": payload.get("expirationDate")
                or (_day(licence.expiration_date) if licence is not None else None),
            }
            if entitlement.school_id is not None:
                data["schoolId"] = lookups.schools.get(entitlement.school_id)
        else:
            data = {
                "entitlementAndLicenseReferenceId": ident,
                "schemaVersion": SCHEMA_VERSION,
                "entitlementId": str(entitlement.id),
                "productId": lookups.products.get(entitlement.product_id),
                "newLicenseStatus": "blocked"
                if row.status == LicenceStatus.BLOCKED.value
                else "activated",
            }
        if eck_id is not None:
            data["eckId"] = eck_id
    return {
        "id": ident,
        "schemaVersion": SCHEMA_VERSION,
        "type": chain_type,
        "objectId": object_id,
        "created": zulu(row.occurred_at),
        "data": data,
        "isDeleteEvent": False,
    }


def seed_envelope(seed_id: int, row: Entitlement, lookups: Lookups) -> dict[str, Any]:
    """An entitlement's current state, for a seed request."""
    ident = seed_message_id(seed_id, row.id)
    return {
        "id": ident,
        "schemaVersion": SCHEMA_VERSION,
        "type": ENTITLEMENT,
        "objectId": str(row.id),
        "created": zulu(row.updated_at),
        "data": {
            "entitlementReferenceId": ident,
            "entitlement": entitlement_data(row, lookups, changed=row.updated_at),
        },
        "isDeleteEvent": False,
    }
