"""Consent management: a school administrator (or the operator) activates and
revokes data exchanges and registers processing agreements, for its own school
only (`resolvers.auth.managed_school`); the changes are `services/consent.py`."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info

from db import consent as store
from domain.errors import DomainError
from resolvers.auth import managed_school
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
from schema.lookups import OrganisationIdentifierInput
from services import consent as service


async def exchanges(info: Info, school: OrganisationIdentifierInput) -> list[Any]:
    _caller, school_id = await managed_school(info, school)
    return await info.context.db.run(lambda s: store.exchanges_of(s, school_id))


async def agreements(info: Info, school: OrganisationIdentifierInput) -> list[Any]:
    _caller, school_id = await managed_school(info, school)
    return await info.context.db.run(lambda s: store.agreements_of(s, school_id))


async def activate(info: Info, input: DataExchangeInput) -> DataExchangePayload:

    try:
        service.check_receiver(input.role, input.data_type)
    except DomainError as error:
        return refusal(error, None, DataExchangePayload)
    caller, school_id = await managed_school(info, input.school)
    try:
        row, changed = await service.activate_exchange(
            info.context.db, caller, school_id, input.supplier_code, input.role, input.data_type
        )
    except DomainError as error:
        return refusal(error, None, DataExchangePayload)
    return DataExchangeChanged(data_exchange=DataExchange.from_row(row), changed=changed)


async def revoke(info: Info, input: DataExchangeInput) -> DataExchangePayload:

    caller, school_id = await managed_school(info, input.school)
    try:
        row = await service.revoke_exchange(
            info.context.db, caller, school_id, input.supplier_code, input.role, input.data_type
        )
    except DomainError as error:
        return refusal(error, None, DataExchangePayload)
    return DataExchangeChanged(data_exchange=DataExchange.from_row(row), changed=True)


async def register(info: Info, input: ProcessingAgreementInput) -> ProcessingAgreementPayload:

    caller, school_id = await managed_school(info, input.school)
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
        return refusal(error, None, ProcessingAgreementPayload)
    return ProcessingAgreementRegistered(processing_agreement=ProcessingAgreement.from_row(row))
