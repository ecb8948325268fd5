"""Dashboards (Dashboardaanbieder, seed 004): aggregated delivery and activation
status of a school, a board, a shop, a product or a school period, for the
dashboard provider (only the schools that activated it), the school itself and
the shop (its own deliveries). Every figure is one grouped SQL statement, run only
when the field is asked for."""

from __future__ import annotations

from datetime import date, datetime

import strawberry
from strawberry.types import Info

import schema.consent  # noqa: F401  (registers the DataType enum)
from domain.entitlements import EntitlementStatus, RecipientRole
from domain.roles import DataType
from schema.types import Organisation, Supplier, load_organisation, load_supplier


@strawberry.type(description="A school left out of (some of) the figures, and why.")
class ExcludedSchool:
    school: Organisation = strawberry.field(description="The school (provider).")
    missing: list[DataType] = strawberry.field(
        description="What the school has not given you: without ENTITLEMENTS it is in no "
        "figure; without ACTIVATIONS it is left out of the licence figures only."
    )
    reason: str = strawberry.field(description="Why, in words.")


@strawberry.type(description="Entitlements in one status.")
class EntitlementStatusCount:
    status: EntitlementStatus = strawberry.field(
        description="Status as shown everywhere: ENDED once activationUntilDate has passed "
        "(CANCELLED and BLOCKED stay what they are)."
    )
    entitlements: int = strawberry.field(description="Number of entitlements.")
    open_entitlements: int = strawberry.field(
        description="Of which open variants (SCHOOL, SCHOOL_SUBJECT, SCHOOL_GROUP)."
    )
    quantity: int = strawberry.field(description="Licences bought on the open ones.")


@strawberry.type(description="Licences activated against licences bought.")
class LicenceTotals:
    entitlements: int = strawberry.field(description="Entitlements counted, any status.")
    open_entitlements: int = strawberry.field(description="Of which open variants.")
    quantity_bought: int = strawberry.field(
        description="Licences bought: the quantity of the open entitlements."
    )
    licences_activated: int = strawberry.field(
        description="Licences activated on the entitlements, open and individual."
    )
    licences_activated_open: int = strawberry.field(
        description="Licences activated on the open entitlements."
    )

    @strawberry.field(
        description="licencesActivatedOpen / quantityBought (0..1); null when nothing was bought."
    )
    def activation_rate(self) -> float | None:
        if not self.quantity_bought:
            return None
        return self.licences_activated_open / self.quantity_bought


@strawberry.type(description="Licences activated on one day.")
class ActivationDay:
    day: date = strawberry.field(
        description="The day (Europe/Amsterdam; on the embedded SQLite backend the stored date)."
    )
    activations: int = strawberry.field(description="Licences activated that day.")
    cumulative: int = strawberry.field(
        description="Licences activated up to and including that day, also before the range."
    )
    cumulative_open: strawberry.Private[int]
    quantity_bought: strawberry.Private[int]

    @strawberry.field(
        description="Activation rate at the end of the day: licences activated on open "
        "entitlements so far / licences bought on them; null when nothing was bought."
    )
    def activation_rate(self) -> float | None:
        if not self.quantity_bought:
            return None
        return self.cumulative_open / self.quantity_bought


@strawberry.type(description="Entitlements a recipient answered with the same failure code.")
class FailureCount:
    code: int = strawberry.field(description="Agreed status code the recipient reported.")
    meaning: str = strawberry.field(description="Name of the status code, e.g. GROUP_UNKNOWN.")
    recipient_role: RecipientRole = strawberry.field(description="LICENSOR or PORTAL.")
    entitlements: int = strawberry.field(description="Entitlements that failed so.")
    last_reported_at: datetime = strawberry.field(description="The latest such answer.")
    supplier_pk: strawberry.Private[int]

    @strawberry.field(description="The recipient that reported it.")
    async def recipient(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.supplier_pk)


@strawberry.type(description="A delivery with entitlements still waiting for a confirmation.")
class StuckDelivery:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery's id.")
    order_number: str | None = strawberry.field(description="The buyer's order number.")
    submitted_at: datetime = strawberry.field(description="When the shop submitted it.")
    entitlements: int = strawberry.field(description="Its entitlements still waiting.")
    pending_at_licensor: int = strawberry.field(
        description="Entitlements the licence office has not confirmed (PROVISIONED) or failed."
    )
    pending_at_portal: int = strawberry.field(
        description="Entitlements a portal has not confirmed (LINK_READY) or failed."
    )
    pending_since: datetime = strawberry.field(description="The longest wait started then.")
    seller_pk: strawberry.Private[int]
    school_pk: strawberry.Private[int | None]

    @strawberry.field(description="The shop that submitted it.")
    async def shop(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.seller_pk)

    @strawberry.field(description="The school that bought it.")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)


@strawberry.type(description="Deliveries waiting for a confirmation longer than asked.")
class StuckDeliveries:
    total: int = strawberry.field(description="How many deliveries wait so long.")
    deliveries: list[StuckDelivery] = strawberry.field(
        description="Those that wait longest, longest first."
    )
