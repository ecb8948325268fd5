"""Push to suppliers' endpoints (issue 18): the endpoint registry, its delivery
status, per-event refusals and seed requests, in GraphQL."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from domain.events import EventKind
from schema.payloads import NotFoundError, RuleViolationError, ValidationError
from schema.types import Organisation, Supplier, load_organisation, load_supplier


@strawberry.enum(description="How the gateway authenticates to a supplier's endpoint.")
class PushAuth(Enum):
    OAUTH2 = strawberry.enum_value(
        "OAUTH2",
        description="OAuth 2.0 client credentials: the gateway fetches an access token from "
        "the receiver's own token server (tokenUrl, clientId, secret, scope) and sends it as "
        "a bearer token, as the chain's specification prescribes.",
    )
    SIGNED = strawberry.enum_value(
        "SIGNED",
        description="A shared secret signs each request: X-Ketenpoort-Timestamp carries the "
        "Unix time, X-Ketenpoort-Signature `sha256=` and the hex HMAC-SHA256 of "
        "`<timestamp>.<body>`.",
    )


@strawberry.input(description="A supplier's events endpoint (the chain's `POST /events`).")
class PushEndpointInput:
    url: str = strawberry.field(
        description="The receiver's events URL; the gateway POSTs batches of events to it."
    )
    auth: PushAuth = strawberry.field(description="How the gateway authenticates.")
    secret: str = strawberry.field(
        description="The OAuth client secret or the signing secret (at least 32 characters). "
        "Stored encrypted; never shown again."
    )
    token_url: str | None = strawberry.field(
        default=None, description="OAUTH2: the receiver's token server."
    )
    client_id: str | None = strawberry.field(default=None, description="OAUTH2: the client id.")
    scope: str | None = strawberry.field(
        default=None, description="OAUTH2: the scope to ask for, e.g. mp.entitlement."
    )
    kinds: list[EventKind] | None = strawberry.field(
        default=None, description="The event kinds to push; null: every kind."
    )
    batch_size: int = strawberry.field(
        default=100, description="Events per request, 1 to 500 (events of one school each)."
    )
    supplier_code: str | None = strawberry.field(
        default=None, description="Operator only: the supplier the endpoint belongs to."
    )


@strawberry.input(description="A change to an endpoint; fields left out stay as they are.")
class PushEndpointChangeInput:
    id: strawberry.ID = strawberry.field(description="The endpoint.")
    url: str | None = strawberry.field(default=None, description="A new URL.")
    auth: PushAuth | None = strawberry.field(default=None, description="Another way to sign in.")
    secret: str | None = strawberry.field(default=None, description="A new secret.")
    token_url: str | None = strawberry.field(default=None, description="A new token server.")
    client_id: str | None = strawberry.field(default=None, description="A new client id.")
    scope: str | None = strawberry.field(default=None, description="A new scope.")
    kinds: list[EventKind] | None = strawberry.field(
        default=None, description="Push only these kinds from now on."
    )
    all_kinds: bool = strawberry.field(
        default=False, description="Push every kind from now on."
    )
    batch_size: int | None = strawberry.field(default=None, description="A new batch size.")
    enabled: bool | None = strawberry.field(
        default=None,
        description="false stops delivery (events keep waiting behind the cursor); true "
        "resumes it.",
    )


@strawberry.type(description="An event the receiver refused (its status was not 0).")
class PushRefusal:
    event_id: strawberry.ID = strawberry.field(description="The gateway's event id.")
    message_id: str = strawberry.field(description="The envelope id the receiver saw.")
    status: int | None = strawberry.field(
        description="The receiver's status: 1 schema invalid, 2 version not supported, "
        "3 scope required, 4 consent required, 5 school unknown, or its own."
    )
    status_message: str | None = strawberry.field(description="The receiver's message.")
    http_status: int | None = strawberry.field(description="The HTTP status of its answer.")
    answered_at: datetime = strawberry.field(description="When it answered.")

    @classmethod
    def from_row(cls, row: Any) -> PushRefusal:
        return cls(
            event_id=strawberry.ID(str(row.event_id)),
            message_id=row.message_id,
            status=row.status,
            status_message=row.status_message,
            http_status=row.http_status,
            answered_at=row.answered_at,
        )


@strawberry.type(description="A request to push the current state of one school.")
class PushSeed:
    id: strawberry.ID = strawberry.field(description="The request.")
    requested_at: datetime = strawberry.field(description="When it was asked for.")
    done_at: datetime | None = strawberry.field(
        description="When every entitlement was delivered; null while it waits."
    )
    sent: int = strawberry.field(description="Entitlements sent.")
    school_pk: strawberry.Private[int]

    @strawberry.field(description="The school.")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)

    @classmethod
    def from_row(cls, row: Any) -> PushSeed:
        return cls(
            id=strawberry.ID(str(row.id)),
            requested_at=row.requested_at,
            done_at=row.done_at,
            sent=row.sent,
            school_pk=row.school_id,
        )


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@strawberry.type(
    description="Where delivery to an endpoint stands. The counters only grow: a metrics "
    "exporter can read them as counters."
)
class PushEndpointStatus:
    last_success_at: datetime | None = strawberry.field(
        description="When a batch was last answered."
    )
    last_error_at: datetime | None = strawberry.field(description="When an attempt last failed.")
    last_error: str | None = strawberry.field(description="What went wrong then.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When the waiting batch is tried again (1 min, 5 min, 1 h, then the "
        "24-hour pause); null: at once."
    )
    paused_until: datetime | None = strawberry.field(
        description="Set during the 24-hour pause after four failed attempts in a row."
    )
    failures: int = strawberry.field(description="Failed attempts in a row.")
    lag_seconds: float = strawberry.field(
        description="How long the oldest event not yet delivered has waited (0: none waits)."
    )
    delivered_events: int = strawberry.field(description="Events answered by the receiver.")
    refused_events: int = strawberry.field(
        description="Of those, refused (status other than 0): see `refusals`."
    )
    failed_attempts: int = strawberry.field(description="Attempts that found it unavailable.")
    delivering: bool = strawberry.field(
        description="A gateway process holds the endpoint's lease now."
    )


@strawberry.type(description="A supplier's events endpoint and where its delivery stands.")
class PushEndpoint:
    id: strawberry.ID = strawberry.field(description="The endpoint.")
    url: str = strawberry.field(description="The receiver's events URL.")
    auth: PushAuth = strawberry.field(description="How the gateway authenticates.")
    token_url: str | None = strawberry.field(description="OAUTH2: the token server.")
    client_id: str | None = strawberry.field(description="OAUTH2: the client id.")
    scope: str | None = strawberry.field(description="OAUTH2: the scope asked for.")
    has_secret: bool = strawberry.field(
        description="A secret is stored (it is never shown: set a new one to change it)."
    )
    kinds: list[EventKind] | None = strawberry.field(description="Kinds pushed; null: all.")
    batch_size: int = strawberry.field(description="Events per request.")
    enabled: bool = strawberry.field(description="Delivery is on.")
    created_at: datetime = strawberry.field(description="When it was registered.")
    status: PushEndpointStatus = strawberry.field(description="Delivery status and counters.")
    pk: strawberry.Private[int]
    supplier_pk: strawberry.Private[int]

    @strawberry.field(description="The supplier it belongs to.")
    async def supplier(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.supplier_pk)

    @strawberry.field(description="The latest events the receiver refused, newest first.")
    async def refusals(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="How many (at most 100).")] = 20,
    ) -> list[PushRefusal]:
        limit = max(1, min(first, info.context.settings.max_page_size))
        rows = await info.context.loaders.push_refusals(self.pk, limit)
        return [PushRefusal.from_row(r) for r in rows]

    @strawberry.field(description="Seed requests, newest first.")
    async def seeds(self, info: Info) -> list[PushSeed]:
        return [PushSeed.from_row(r) for r in await info.context.loaders.push_seeds(self.pk)]

    @classmethod
    def from_row(cls, row: Any, now: datetime | None = None) -> PushEndpoint:
        now = now or datetime.now(UTC)
        pending = _aware(row.pending_since)
        lease = _aware(row.lease_until)
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            auth=PushAuth(row.auth),
            token_url=row.token_url,
            client_id=row.client_id,
            scope=row.scope,
            has_secret=bool(row.secret_cipher),
            kinds=[EventKind(k) for k in row.kinds] if row.kinds else None,
            batch_size=row.batch_size,
            enabled=row.enabled,
            created_at=row.created_at,
            status=PushEndpointStatus(
                last_success_at=row.last_success_at,
                last_error_at=row.last_error_at,
                last_error=row.last_error,
                next_attempt_at=row.next_attempt_at,
                paused_until=row.paused_until,
                failures=row.failures,
                lag_seconds=max(0.0, (now - pending).total_seconds()) if pending else 0.0,
                delivered_events=row.delivered_events,
                refused_events=row.refused_events,
                failed_attempts=row.failed_attempts,
                delivering=lease is not None and lease > now,
            ),
            pk=row.id,
            supplier_pk=row.supplier_id,
        )


@strawberry.type(description="The endpoint as it is now.")
class PushEndpointSaved:
    endpoint: PushEndpoint = strawberry.field(description="The endpoint.")


@strawberry.type(description="The endpoint, its answers and seeds were removed.")
class PushEndpointRemoved:
    id: strawberry.ID = strawberry.field(description="The removed endpoint.")


@strawberry.type(description="The seed was queued; the endpoint's deliverer sends it first.")
class PushSeedRequested:
    seed: PushSeed = strawberry.field(description="The request.")


PushEndpointPayload = Annotated[
    PushEndpointSaved | ValidationError | NotFoundError | RuleViolationError,
    strawberry.union("PushEndpointPayload", description="Result of an endpoint change."),
]
PushEndpointRemovePayload = Annotated[
    PushEndpointRemoved | NotFoundError | RuleViolationError,
    strawberry.union("PushEndpointRemovePayload", description="Result of removing."),
]
PushSeedPayload = Annotated[
    PushSeedRequested | NotFoundError | RuleViolationError,
    strawberry.union("PushSeedPayload", description="Result of a seed request."),
]

# Suppliers that receive events of the chain (and the operator for them).
