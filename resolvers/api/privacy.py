"""The privacy root fields: the audit trail and personErase. Each field names the roles
it needs and calls its resolver."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.roles import Role
from resolvers import privacy as resolve
from resolvers.auth import requires
from schema.lookups import OrganisationIdentifierInput
from schema.privacy import After, AuditEntry, First, PersonEraseInput, PersonErasePayload
from schema.types import Connection


@strawberry.type(description="Privacy reads.")
class PrivacyQuery:
    @strawberry.field(
        description="The school's audit trail: who read or changed its data, when, in which "
        "role. A school administrator sees its own school's trail.",
        permission_classes=[requires(Role.SCHOOL)],
    )
    async def audit_trail(
        self,
        info: Info,
        school: Annotated[
            OrganisationIdentifierInput,
            strawberry.argument(description="The school (any RIO identifier)."),
        ],
        first: First = None,
        after: After = None,
        since: Annotated[
            datetime | None,
            strawberry.argument(description="Only entries at or after this moment."),
        ] = None,
        until: Annotated[
            datetime | None, strawberry.argument(description="Only entries before this moment.")
        ] = None,
    ) -> Connection[AuditEntry]:
        return await resolve.audit_trail(info, school, first, after, since, until)


@strawberry.type(description="Privacy changes.")
class PrivacyMutation:
    @strawberry.mutation(
        description="Operator: erase a person (identifiers, enrolments, memberships and named "
        "entitlements go; licences and counts stay, anonymised). The erasure is audited.",
        permission_classes=[requires(Role.OPERATOR)],
    )
    async def person_erase(
        self,
        info: Info,
        input: Annotated[PersonEraseInput, strawberry.argument(description="Who and why.")],
    ) -> PersonErasePayload:
        return await resolve.erase(info, input)
