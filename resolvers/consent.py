"""Consent management: a school administrator (or the operator) activates and
revokes data exchanges and registers processing agreements, for its own school
only (`school_for_admin`); the changes are `services/consent.py`."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info

from db import consent as store
from domain.errors import DomainError, StatusCode
from domain.identifiers import OrgLevel
from resolvers import lookup
from resolvers.auth import Principal, principal
from resolvers.writes import refusal
from schema.consent import (
    DataExchange,
    DataExchangeChanged,
    DataExchangeInput,
    DataExchangePayload,
    ProcessingAgreement,
    ProcessingAgreementInput,
    ProcessingAgreementPayload,
    ProcessingAgreementRegistered,
)
from schema.errors import BadInput, Forbidden
from schema.lookups import OrganisationIdentifierInput
from services import consent as service


async def school_for_admin(
    info: Info, identifier: OrganisationIdentifierInput
) -> tuple[Principal, int]:
    """The school a consent call is about; a school administrator only its own."""
    caller = await principal(info.context)
    found = await lookup.find_organisation(
        info.context.db, identifier.scheme, identifier.value, OrgLevel.PROVIDER
    )
    if not isinstance(found, lookup.OrgFound):
        message = str(found.error) if isinstance(found, lookup.Malformed) else found.message
        raise BadInput(message, field="school", statusCode=int(StatusCode.SCHOOL_UNKNOWN))
    if not caller.is_operator and caller.school_id != found.row.id:
        raise Forbidden("a school administrator manages the data exchanges of its own school only")
    return caller, found.row.id


async def exchanges(info: Info, school: OrganisationIdentifierInput) -> list[Any]:
    _caller, school_id = await school_for_admin(info, school)
    return await info.context.db.run(lambda s: store.exchanges_of(s, school_id))


async def agreements(info: Info, school: OrganisationIdentifierInput) -> list[Any]:
    _caller, school_id = await school_for_admin(info, school)
    return await info.context.db.run(lambda s: store.agreements_of(s, school_id))


async def activate(info: Info, input: DataExchangeInput) -> DataExchangePayload:

    try:
        service.check_receiver(input.role, input.data_type)
    except DomainError as error:
        return refusal(error, None)
    caller, school_id = await school_for_admin(info, input.school)
    try:
        row, changed = await service.activate_exchange(
            info.context.db, caller, school_id, input.supplier_code, input.role, input.data_type
        )
    except DomainError as error:
        return refusal(error, None)
    return DataExchangeChanged(data_exchange=DataExchange.from_row(row), changed=changed)


async def revoke(info: Info, input: DataExchangeInput) -> DataExchangePayload:

    caller, school_id = await school_for_admin(info, input.school)
    try:
        row = await service.revoke_exchange(
            info.context.db, caller, school_id, input.supplier_code, input.role, input.data_type
        )
    except DomainError as error:
        return refusal(error, None)
    return DataExchangeChanged(data_exchange=DataExchange.from_row(row), changed=True)


async def register(info: Info, input: ProcessingAgreementInput) -> ProcessingAgreementPayload:

    caller, school_id = await school_for_admin(info, input.school)
    try:
        row = await service.register_agreement(
            info.context.db,
            caller,
            school_id,
            input.supplier_code,
            input.reference,
            input.valid_from,
            input.valid_until,
        )
    except DomainError as error:
        return refusal(error, None)
    return ProcessingAgreementRegistered(processing_agreement=ProcessingAgreement.from_row(row))
