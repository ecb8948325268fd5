"""The dashboard root field and its summary, whose figures resolve through
`resolvers/dashboard.py` when asked for. Each field names the roles it needs and
calls its resolver."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from db import dashboard as figures
from domain.roles import Role
from resolvers import dashboard as resolve
from resolvers.auth import requires
from schema.dashboard import (
    ActivationDay,
    EntitlementStatusCount,
    ExcludedSchool,
    FailureCount,
    LicenceTotals,
    StuckDeliveries,
)
from schema.lookups import OrganisationIdentifierInput
from schema.types import Organisation


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
