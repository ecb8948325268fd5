"""Dashboards (Dashboardaanbieder, seed 004): aggregated delivery and activation
status of a school, a board, a shop, a product or a school period, for the
dashboard provider (only the schools that activated it), the school itself and
the shop (its own deliveries). Every figure is one grouped SQL statement, run only
when the field is asked for."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

import schema.consent  # noqa: F401  (registers the DataType enum)
from db import dashboard as figures
from domain.entitlements import EntitlementStatus, RecipientRole
from domain.roles import DataType, Role
from resolvers import dashboard as resolve
from resolvers.auth import requires
from schema.lookups import OrganisationIdentifierInput
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


@strawberry.type(
    description="Aggregated status for a dashboard. Each field is computed by the database "
    "when asked for. Figures cover only the schools the caller may see: a dashboard provider "
    "the schools that activated ENTITLEMENTS (licence figures: ACTIVATIONS) for it with a "
    "valid processing agreement, a school administrator its own school, a shop its own "
    "deliveries. Schools of a named board that are left out are listed in `excludedSchools`."
)
class DashboardSummary:
    from_date: date | None = strawberry.field(
        description="Start of the date range applied (null: none)."
    )
    until_date: date | None = strawberry.field(
        description="End of the date range applied (null: none)."
    )
    excluded_schools: list[ExcludedSchool] = strawberry.field(
        description="Schools of the named board (or the named school) left out, with the "
        "reason. Schools that are not named are never listed: naming them would reveal data "
        "the caller may not see."
    )
    scope: strawberry.Private[resolve.Scoped]

    @strawberry.field(
        description="The schools whose entitlement figures are included; null when the "
        "figures are not limited to schools (operator, or a shop's own deliveries)."
    )
    async def schools(self, info: Info) -> list[Organisation] | None:
        return await resolve.schools(info, self.scope)

    @strawberry.field(description="Entitlements per status, with the licences bought.")
    async def entitlements_by_status(self, info: Info) -> list[EntitlementStatusCount]:
        rows = await resolve.status_counts(info, self.scope)
        return [
            EntitlementStatusCount(
                status=row.status,
                entitlements=row.entitlements,
                open_entitlements=row.open_entitlements,
                quantity=row.quantity,
            )
            for row in rows
        ]

    @strawberry.field(
        description="Licences activated against licences bought. Null, with a "
        "CONSENT_REQUIRED error, when the one named school has not activated ACTIVATIONS."
    )
    async def licence_totals(self, info: Info) -> LicenceTotals | None:
        row = await resolve.licence_totals(info, self.scope)
        return LicenceTotals(
            entitlements=row.entitlements,
            open_entitlements=row.open_entitlements,
            quantity_bought=row.quantity_bought,
            licences_activated=row.licences_activated,
            licences_activated_open=row.licences_activated_open,
        )

    @strawberry.field(
        description="Licences activated per day within the date range (default: the last "
        "30 days), with the running total and rate. Days without activations are left out. "
        "Null, with a CONSENT_REQUIRED error, like licenceTotals."
    )
    async def activations_per_day(self, info: Info) -> list[ActivationDay] | None:
        rows = await resolve.activations_per_day(info, self.scope)
        return [
            ActivationDay(
                day=row.day,
                activations=row.activations,
                cumulative=row.cumulative,
                cumulative_open=row.cumulative_open,
                quantity_bought=row.quantity_bought,
            )
            for row in rows
        ]

    @strawberry.field(
        description="Entitlements a licence office or portal failed on, per status code and "
        "recipient, most frequent first."
    )
    async def failures(self, info: Info) -> list[FailureCount]:
        return await resolve.failures(info, self.scope)

    @strawberry.field(
        description="Deliveries with entitlements a licence office or portal has neither "
        "confirmed nor failed for longer than the given time."
    )
    async def stuck_deliveries(
        self,
        info: Info,
        pending_longer_than_minutes: Annotated[
            int,
            strawberry.argument(
                description="How long an answer may take before a delivery counts as stuck "
                "(1 minute to 366 days)."
            ),
        ],
        first: Annotated[
            int,
            strawberry.argument(description="How many deliveries to list (1 to 100)."),
        ] = 20,
    ) -> StuckDeliveries:
        return await resolve.stuck_deliveries(info, self.scope, pending_longer_than_minutes, first)


READERS = requires(Role.DASHBOARD, Role.SCHOOL, Role.SELLER)

_MAX = figures.MAX_RANGE_DAYS


@strawberry.type(description="Aggregated status for dashboards.")
class DashboardQuery:
    @strawberry.field(
        description="Aggregated status of a school, a board, a shop, a product or a school "
        "period (name one or combine them; name none for everything you may see). A school "
        "without consent is refused with CONSENT_REQUIRED (statusCode 4); of a board, such "
        "schools are left out and listed.",
        permission_classes=[READERS],
    )
    async def dashboard(
        self,
        info: Info,
        school: Annotated[
            OrganisationIdentifierInput | None,
            strawberry.argument(description="A school (provider), by any RIO identifier."),
        ] = None,
        board: Annotated[
            OrganisationIdentifierInput | None,
            strawberry.argument(description="A board: the figures of its schools."),
        ] = None,
        shop_code: Annotated[
            str | None,
            strawberry.argument(
                description="Only deliveries of this shop (supplier code). A shop always sees "
                "its own deliveries only."
            ),
        ] = None,
        product_id: Annotated[
            str | None,
            strawberry.argument(description="Only this product (EAN/ISBN-13 or UUID)."),
        ] = None,
        school_period: Annotated[
            str | None,
            strawberry.argument(
                description="A school period's code (e.g. 2026-2027) of the named school or "
                "board: its days become the date range."
            ),
        ] = None,
        from_date: Annotated[
            date | None,
            strawberry.argument(
                description=f"First day of the date range (give both ends, at most {_MAX} "
                "days): entitlements whose activation period overlaps it, activations on "
                "its days."
            ),
        ] = None,
        until_date: Annotated[
            date | None,
            strawberry.argument(description="Last day of the date range."),
        ] = None,
    ) -> DashboardSummary:
        scoped = await resolve.summary(
            info,
            school=school,
            board=board,
            shop_code=shop_code,
            product_id=product_id,
            school_period=school_period,
            from_date=from_date,
            until_date=until_date,
        )
        return DashboardSummary(
            from_date=scoped.from_date,
            until_date=scoped.until_date,
            excluded_schools=[
                ExcludedSchool(school=Organisation.from_row(row), missing=missing, reason=reason)
                for row, missing, reason in scoped.excluded
            ],
            scope=scoped,
        )
