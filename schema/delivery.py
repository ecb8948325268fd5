"""Delivery (Leveren): inputs, payloads and the Query/Mutation fields for
submitting delivery specifications and moving entitlements through
ENTITLED → PROVISIONED → LINK_READY (and CANCELLED, BLOCKED)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from domain.entitlements import Variant
from domain.identifiers import PersonIdScheme
from domain.privacy import redact_pgns
from schema.payloads import (
    NotFoundError,
    ReferenceConflictError,
    RuleViolationError,
    TransitionNotAllowedError,
    ValidationError,
)
from schema.types import Entitlement, Organisation, Supplier, load_organisation, load_supplier

# --- inputs ---------------------------------------------------------------------------------


@strawberry.input(description="A person identifier of an entitlee other than the ECK iD.")
class UserIdInput:
    scheme: PersonIdScheme = strawberry.field(description="NEPRI, NEPPI, BPI, ASI or EDUID.")
    value: str = strawberry.field(description="The identifier.")


@strawberry.input(
    description="A person an individual entitlement is for: exactly one of eckId, userId or "
    "activationCode (code 2 when none is given)."
)
class EntitleeInput:
    eck_id: str | None = strawberry.field(default=None, description="The pupil's ECK iD.")
    user_id: UserIdInput | None = strawberry.field(
        default=None, description="A secondary identifier (always for teachers)."
    )
    activation_code: str | None = strawberry.field(
        default=None, description="An activation code the shop hands to the person."
    )


@strawberry.input(
    description="The licence term that fixes each licence's expirationDate: a minimum "
    "expiration date, a duration in months from activation, or both (the later wins)."
)
class LicenceTermInput:
    min_expiration_date: date | None = strawberry.field(
        default=None, description="Licences run at least until this date."
    )
    duration_months: int | None = strawberry.field(
        default=None, description="Licences run this many months from activation."
    )


@strawberry.input(
    description="One ordered product: it becomes one entitlement (at combi/set level). "
    "Fields are nullable so a missing one is answered with its agreed status code."
)
class OrderLineInput:
    product_id: str | None = strawberry.field(
        default=None, description="EAN/ISBN-13 or UUID of the product (codes 10/11)."
    )
    variant: Variant | None = strawberry.field(
        default=None, description="Entitlement variant (aanspraakvariant)."
    )
    quantity: int | None = strawberry.field(
        default=None, description="Licences bought, for open variants (code 30 below 1)."
    )
    school_subject_id: str | None = strawberry.field(
        default=None, description="The school's subject code, for SCHOOL_SUBJECT (codes 4/5)."
    )
    group_id: str | None = strawberry.field(
        default=None, description="The school's group code, for SCHOOL_GROUP (codes 6/7)."
    )
    entitlees: list[EntitleeInput] | None = strawberry.field(
        default=None, description="The named persons, for individual variants (codes 2/3)."
    )
    eck_ids: list[str] | None = strawberry.field(
        default=None,
        description="Bulk form for many pupils: their ECK iDs, the same as entitlees with "
        "only an eckId (and several times cheaper to send for thousands). Problems are "
        "reported as orderLines.{i}.eckIds.{j}.",
    )
    start_date: date | None = strawberry.field(
        default=None, description="First day pupils can activate (code 14 before publication)."
    )
    activation_until_date: date | None = strawberry.field(
        default=None, description="Last day pupils can activate."
    )
    licence_term: LicenceTermInput | None = strawberry.field(
        default=None, description="The licence term."
    )


@strawberry.input(description="Who bought: a school (any RIO identifier) or a private person.")
class BuyerInput:
    school_id: str | None = strawberry.field(
        default=None,
        description="The school: OA_ID, OIE_CODE (BRIN4), VE_CODE (BRIN6) or any other "
        "identifier (codes 8/9).",
    )
    private_person: bool = strawberry.field(
        default=False, description="A parent's private purchase (PERSONAL variant only)."
    )


@strawberry.input(
    description="A delivery specification (leveringsspecificatie) as a shop's delivery "
    "facility sends it. Refused as a whole, with every problem listed, or accepted whole."
)
class DeliveryInput:
    reference_id: str | None = strawberry.field(
        default=None,
        description="The shop's unique id for this message; a retry with the same id and "
        "content returns the original result and writes nothing.",
    )
    buyer: BuyerInput | None = strawberry.field(default=None, description="The buyer.")
    order_number: str | None = strawberry.field(default=None, description="Order number.")
    contract_number: str | None = strawberry.field(
        default=None, description="Contract number (codes 20/21)."
    )
    order_lines: list[OrderLineInput] | None = strawberry.field(
        default=None, description="The ordered products; at least one."
    )


@strawberry.input(description="A step on one entitlement, sent as a message of the chain.")
class EntitlementStepInput:
    entitlement_id: strawberry.ID = strawberry.field(description="The entitlementId.")
    reference_id: str = strawberry.field(
        description="Sender's unique id for this message; a repeat gets the same answer."
    )


@strawberry.input(description="A recipient reports that it cannot do its step.")
class EntitlementFailureInput:
    entitlement_id: strawberry.ID = strawberry.field(description="The entitlementId.")
    reference_id: str = strawberry.field(description="Sender's unique id for this message.")
    code: int = strawberry.field(description="Agreed status code (e.g. 7: group unknown).")
    message: str = strawberry.field(description="Explanation for the shop and the school.")


@strawberry.input(description="Lower the quantity of an open entitlement.")
class EntitlementQuantityInput:
    entitlement_id: strawberry.ID = strawberry.field(description="The entitlementId.")
    reference_id: str = strawberry.field(description="Sender's unique id for this message.")
    quantity: int = strawberry.field(
        description="New quantity: lower than now and not below activated licences (code 41)."
    )


# --- output types ---------------------------------------------------------------------------


@strawberry.type(description="Entitlements of a delivery per status, and its licences.")
class DeliveryTotals:
    entitlements: int = strawberry.field(description="Entitlements in the delivery.")
    entitled: int = strawberry.field(description="Waiting for the licence office.")
    provisioned: int = strawberry.field(description="Waiting for the portal's link.")
    link_ready: int = strawberry.field(description="Pupils can activate.")
    cancelled: int = strawberry.field(description="Cancelled by the shop.")
    blocked: int = strawberry.field(description="Blocked by the shop.")
    ended: int = strawberry.field(description="Past activationUntilDate.")
    failed: int = strawberry.field(description="At least one recipient reported a failure.")
    licensed: int = strawberry.field(description="Licences activated.")
    expired: int = strawberry.field(description="Licences past their expirationDate.")
    quantity: int = strawberry.field(description="Licences bought on open entitlements.")


@strawberry.type(description="A delivery specification as the gateway received it.")
class Delivery:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this delivery.")
    reference_id: str = strawberry.field(description="The shop's referenceId.")
    order_number: str | None = strawberry.field(description="Order number.")
    created_at: datetime = strawberry.field(description="When it was received.")
    pk: strawberry.Private[int]
    seller_pk: strawberry.Private[int]
    school_pk: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(
            id=strawberry.ID(str(row.id)),
            reference_id=redact_pgns(row.reference_id),
            order_number=None if row.order_number is None else redact_pgns(row.order_number),
            created_at=row.created_at,
            pk=row.id,
            seller_pk=row.seller_id,
            school_pk=row.buyer_school_id,
        )

    @strawberry.field(description="The shop that submitted it.")
    async def seller(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.seller_pk)

    @strawberry.field(description="The buying school; null for a private purchase.")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)

    @strawberry.field(description="Where the order stands: entitlements per status, licences.")
    async def totals(self, info: Info) -> DeliveryTotals:
        found = await info.context.loaders.delivery_totals.load(self.pk)
        if found is None:
            return DeliveryTotals(
                entitlements=0,
                entitled=0,
                provisioned=0,
                link_ready=0,
                cancelled=0,
                blocked=0,
                ended=0,
                failed=0,
                licensed=0,
                expired=0,
                quantity=0,
            )
        return DeliveryTotals(**found.__dict__)

    @strawberry.field(description="The entitlements the delivery became, one per order line.")
    async def entitlements(self, info: Info) -> list[Entitlement]:
        rows = await info.context.loaders.entitlements_of_delivery.load(self.pk)
        return [Entitlement.from_row(r) for r in rows]


@strawberry.type(description="The delivery was accepted; its entitlements exist now.")
class DeliverySubmitted:
    delivery: Delivery = strawberry.field(description="The delivery.")
    replayed: bool = strawberry.field(
        description="True when this referenceId was processed before (nothing new written)."
    )


@strawberry.type(description="The step was applied (or had been: see `replayed`).")
class EntitlementChanged:
    entitlement: Entitlement = strawberry.field(description="The entitlement as it is now.")
    replayed: bool = strawberry.field(
        description="True when this referenceId was processed before (nothing new written)."
    )


DeliverySubmitPayload = Annotated[
    DeliverySubmitted | ValidationError | ReferenceConflictError,
    strawberry.union("DeliverySubmitPayload", description="Result of deliverySubmit."),
]

EntitlementChangePayload = Annotated[
    EntitlementChanged
    | NotFoundError
    | TransitionNotAllowedError
    | RuleViolationError
    | ReferenceConflictError,
    strawberry.union("EntitlementChangePayload", description="Result of a step on an entitlement."),
]

# --- roots ----------------------------------------------------------------------------------
