"""Filter inputs for the paginated lists."""

from __future__ import annotations

import strawberry

from domain.entitlements import EntitlementStatus, Variant
from domain.identifiers import OrgLevel
from domain.licences import LicenceStatus
from domain.products import ProductType
from schema.lookups import OrganisationIdentifierInput


@strawberry.input(description="Filter for the organisations list.")
class OrganisationFilter:
    level: OrgLevel | None = strawberry.field(default=None, description="Only this RIO level.")
    name_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive part of the name."
    )
    board: OrganisationIdentifierInput | None = strawberry.field(
        default=None, description="Only the providers of this board."
    )


@strawberry.input(description="Filter for the product catalogue.")
class ProductFilter:
    type: ProductType | None = strawberry.field(default=None, description="Only this type.")
    publisher_code: str | None = strawberry.field(
        default=None, description="Only products of this publisher (supplier code)."
    )
    name_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive part of the title."
    )


@strawberry.input(description="Filter for the entitlements list.")
class EntitlementFilter:
    school: OrganisationIdentifierInput | None = strawberry.field(
        default=None, description="Only entitlements for this school (any of its identifiers)."
    )
    product_id: str | None = strawberry.field(
        default=None, description="Only entitlements on this productId (EAN/ISBN or UUID)."
    )
    delivery_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only entitlements of this delivery."
    )
    status: list[EntitlementStatus] | None = strawberry.field(
        default=None, description="Only these statuses (ENDED: past activationUntilDate)."
    )
    variant: Variant | None = strawberry.field(default=None, description="Only this variant.")


@strawberry.input(description="Filter for the licences list.")
class LicenceFilter:
    school: OrganisationIdentifierInput | None = strawberry.field(
        default=None, description="Only licences activated at this school."
    )
    product_id: str | None = strawberry.field(
        default=None, description="Only licences on this productId."
    )
    eck_id: str | None = strawberry.field(default=None, description="Only this pupil's licences.")
    entitlement_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only licences on this entitlement."
    )
    status: LicenceStatus | None = strawberry.field(
        default=None, description="Only this status (EXPIRED: past expirationDate)."
    )
