"""The consent root fields: the school's data exchanges and processing agreements. Each
field names the roles it needs and calls its resolver."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.roles import Role
from resolvers import consent as resolve
from resolvers.auth import requires
from schema.consent import (
    DataExchange,
    DataExchangeInput,
    DataExchangePayload,
    ProcessingAgreement,
    ProcessingAgreementInput,
    ProcessingAgreementPayload,
)
from schema.lookups import OrganisationIdentifierInput

SCHOOL = requires(Role.SCHOOL)


@strawberry.type(description="Consent reads.")
class ConsentQuery:
    @strawberry.field(
        description="The school's data exchanges (active and revoked) with every supplier.",
        permission_classes=[SCHOOL],
    )
    async def data_exchanges(
        self,
        info: Info,
        school: Annotated[
            OrganisationIdentifierInput,
            strawberry.argument(description="The school (any RIO identifier)."),
        ],
    ) -> list[DataExchange]:
        return [DataExchange.from_row(r) for r in await resolve.exchanges(info, school)]

    @strawberry.field(
        description="The school's processing agreements with suppliers.",
        permission_classes=[SCHOOL],
    )
    async def processing_agreements(
        self,
        info: Info,
        school: Annotated[
            OrganisationIdentifierInput,
            strawberry.argument(description="The school (any RIO identifier)."),
        ],
    ) -> list[ProcessingAgreement]:
        return [ProcessingAgreement.from_row(r) for r in await resolve.agreements(info, school)]


@strawberry.type(description="Consent changes.")
class ConsentMutation:
    @strawberry.mutation(
        description="Activate a data exchange: from now on the supplier receives this data "
        "type of the school in this role (confidential types also need a valid agreement).",
        permission_classes=[SCHOOL],
    )
    async def data_exchange_activate(
        self,
        info: Info,
        input: Annotated[DataExchangeInput, strawberry.argument(description="Which exchange.")],
    ) -> DataExchangePayload:
        return await resolve.activate(info, input)

    @strawberry.mutation(
        description="Revoke a data exchange: it takes effect at once, for reads, new "
        "deliveries and open subscriptions alike.",
        permission_classes=[SCHOOL],
    )
    async def data_exchange_revoke(
        self,
        info: Info,
        input: Annotated[DataExchangeInput, strawberry.argument(description="Which exchange.")],
    ) -> DataExchangePayload:
        return await resolve.revoke(info, input)

    @strawberry.mutation(
        description="Register a processing agreement (mandate) with a supplier.",
        permission_classes=[SCHOOL],
    )
    async def processing_agreement_register(
        self,
        info: Info,
        input: Annotated[
            ProcessingAgreementInput, strawberry.argument(description="The agreement.")
        ],
    ) -> ProcessingAgreementPayload:
        return await resolve.register(info, input)
