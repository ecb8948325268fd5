"""Privacy: the school's audit trail and the operator's erasure of a person."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.privacy import redact
from schema.lookups import PersonIdentifierInput
from schema.payloads import RuleViolationError
from schema.types import Supplier, load_supplier


@strawberry.type(description="One entry of a school's audit trail.")
class AuditEntry:
    at: datetime = strawberry.field(description="When it happened.")
    role: str | None = strawberry.field(description="Role the supplier acted in.")
    action: str = strawberry.field(
        description="What was done, e.g. read.person, deliverySubmit, dataExchange.revoke."
    )
    object_type: str = strawberry.field(description="What kind of object it was about.")
    object_id: str | None = strawberry.field(description="Which object (the gateway's id).")
    detail: JSON | None = strawberry.field(description="Extra facts, without identifiers.")
    supplier_pk: strawberry.Private[int | None]

    @strawberry.field(description="The supplier that did it.")
    async def supplier(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.supplier_pk)

    @classmethod
    def from_row(cls, row: Any) -> AuditEntry:
        return cls(
            at=row.at,
            role=row.role,
            action=row.action,
            object_type=row.object_type,
            object_id=row.object_id,
            detail=redact(row.detail),
            supplier_pk=row.supplier_id,
        )


@strawberry.input(description="Which person to erase, and why.")
class PersonEraseInput:
    identifier: PersonIdentifierInput = strawberry.field(
        description="The person's ECK iD or secondary identifier."
    )
    reason: str = strawberry.field(description="Why (e.g. the school's request, reference).")


@strawberry.type(description="The person was erased; licences stay, anonymised.")
class PersonErased:
    person_id: str = strawberry.field(description="The gateway's id of the erased record.")
    identifiers_removed: int = strawberry.field(description="Identifiers deleted.")
    enrolments_removed: int = strawberry.field(description="Enrolments deleted.")
    licences_anonymised: int = strawberry.field(description="Licences kept without a person.")


PersonErasePayload = Annotated[
    PersonErased | RuleViolationError,
    strawberry.union("PersonErasePayload", description="Result of personErase."),
]

First = Annotated[int | None, strawberry.argument(description="Page size (at most 100).")]
After = Annotated[str | None, strawberry.argument(description="Cursor of the previous page.")]
