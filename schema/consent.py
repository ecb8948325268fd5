"""The school in control: activating and revoking data exchanges per supplier,
role and data type, and registering processing agreements (mandates)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from domain.roles import DataType, Role
from schema.lookups import OrganisationIdentifierInput
from schema.payloads import NotFoundError, RuleViolationError
from schema.types import Organisation, Supplier, load_organisation, load_supplier

strawberry.enum(
    Role,
    description="Role in which a supplier calls the gateway or receives data: seller "
    "(Leermiddelenshop), licensor (licence office), portal, dashboard, sis "
    "(administration system), school, operator.",
)
strawberry.enum(
    DataType,
    description="Data types (gegevenssoorten) a school activates per supplier: SCHOOL_INFO, "
    "SCHOOL_ORGANISATION, FINE_DISTRIBUTION, ENTITLEMENTS, ACTIVATIONS. All but SCHOOL_INFO "
    "are confidential and also need a valid processing agreement.",
)


@strawberry.input(description="Which data exchange: school, receiving supplier, role, data type.")
class DataExchangeInput:
    school: OrganisationIdentifierInput = strawberry.field(
        description="The school (any RIO identifier); a school administrator only its own."
    )
    supplier_code: str = strawberry.field(description="The receiving supplier's code.")
    role: Role = strawberry.field(description="The role in which it receives the data.")
    data_type: DataType = strawberry.field(description="The data type.")


@strawberry.input(description="A processing agreement (verwerkersovereenkomst) with a supplier.")
class ProcessingAgreementInput:
    school: OrganisationIdentifierInput = strawberry.field(
        description="The school (any RIO identifier); a school administrator only its own."
    )
    supplier_code: str = strawberry.field(description="The processing supplier's code.")
    reference: str | None = strawberry.field(
        default=None, description="The agreement's own reference, e.g. from the Privacyconvenant."
    )
    valid_from: date = strawberry.field(description="First day the mandate is valid.")
    valid_until: date | None = strawberry.field(
        default=None, description="Last day the mandate is valid; null: until ended."
    )


@strawberry.type(description="A school's activation of one data type towards one supplier.")
class DataExchange:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this activation.")
    role: Role = strawberry.field(description="Role in which the supplier receives the data.")
    data_type: DataType = strawberry.field(description="The data type.")
    activated_at: datetime = strawberry.field(description="When the school activated it.")
    activated_by: str | None = strawberry.field(description="Who activated it.")
    revoked_at: datetime | None = strawberry.field(
        description="When the school revoked it; data stops flowing at that moment."
    )
    school_pk: strawberry.Private[int]
    supplier_pk: strawberry.Private[int]

    @strawberry.field(description="ACTIVE or REVOKED.")
    def state(self) -> str:
        return "REVOKED" if self.revoked_at else "ACTIVE"

    @strawberry.field(description="The school.")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)

    @strawberry.field(description="The receiving supplier.")
    async def supplier(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.supplier_pk)

    @classmethod
    def from_row(cls, row: Any) -> DataExchange:
        return cls(
            id=strawberry.ID(str(row.id)),
            role=Role(row.role),
            data_type=DataType(row.data_type),
            activated_at=row.activated_at,
            activated_by=row.activated_by,
            revoked_at=row.revoked_at,
            school_pk=row.school_id,
            supplier_pk=row.supplier_id,
        )


@strawberry.type(description="A processing agreement: the mandate confidential data needs.")
class ProcessingAgreement:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this agreement.")
    reference: str | None = strawberry.field(description="The agreement's own reference.")
    valid_from: date = strawberry.field(description="First valid day.")
    valid_until: date | None = strawberry.field(description="Last valid day, if ended.")
    school_pk: strawberry.Private[int]
    supplier_pk: strawberry.Private[int]

    @strawberry.field(description="The school.")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)

    @strawberry.field(description="The processing supplier.")
    async def supplier(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.supplier_pk)

    @classmethod
    def from_row(cls, row: Any) -> ProcessingAgreement:
        return cls(
            id=strawberry.ID(str(row.id)),
            reference=row.reference,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            school_pk=row.school_id,
            supplier_pk=row.supplier_id,
        )


@strawberry.type(description="The data exchange as it is now.")
class DataExchangeChanged:
    data_exchange: DataExchange = strawberry.field(description="The activation.")
    changed: bool = strawberry.field(
        description="False when it already was in the requested state (nothing written)."
    )


@strawberry.type(description="The processing agreement was registered.")
class ProcessingAgreementRegistered:
    processing_agreement: ProcessingAgreement = strawberry.field(description="The agreement.")


DataExchangePayload = Annotated[
    DataExchangeChanged | NotFoundError | RuleViolationError,
    strawberry.union("DataExchangePayload", description="Result of activating or revoking."),
]
ProcessingAgreementPayload = Annotated[
    ProcessingAgreementRegistered | NotFoundError | RuleViolationError,
    strawberry.union(
        "ProcessingAgreementPayload", description="Result of registering an agreement."
    ),
]
