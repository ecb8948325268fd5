"""Consent management: a school administrator (or the operator) activates and
revokes data exchanges and registers processing agreements. Every change is one
transaction with its audit row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from strawberry.types import Info

from db import consent as store
from db import suppliers
from db.outbox import audit
from domain.consent import RECEIVERS
from domain.errors import DomainError, StatusCode
from domain.identifiers import OrgLevel
from domain.roles import Role
from resolvers import lookup
from resolvers.auth import Principal, principal
from resolvers.writes import actor
from schema.errors import BadInput, Forbidden
from schema.payloads import error_payload

if TYPE_CHECKING:
    from schema.consent import DataExchangeInput, ProcessingAgreementInput
    from schema.lookups import OrganisationIdentifierInput


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


def _role_of(caller: Principal) -> str:
    return Role.OPERATOR.value if caller.is_operator else Role.SCHOOL.value


async def exchanges(info: Info, school: OrganisationIdentifierInput) -> list[Any]:
    _caller, school_id = await school_for_admin(info, school)
    return await info.context.db.run(lambda s: store.exchanges_of(s, school_id))


async def agreements(info: Info, school: OrganisationIdentifierInput) -> list[Any]:
    _caller, school_id = await school_for_admin(info, school)
    return await info.context.db.run(lambda s: store.agreements_of(s, school_id))


async def _supplier_id(info: Info, code: str) -> int:
    found = await info.context.db.run(lambda s: suppliers.by_code(s, code))
    if found is None:
        raise DomainError(StatusCode.OTHER, f"no supplier has code {code!r}", field="supplierCode")
    return found[0]


async def _change_exchange(
    info: Info, input: DataExchangeInput, change: Callable[..., Awaitable[Any]], action: str
) -> Any:
    """One transaction: find the active exchange, let `change` decide, audit it."""
    from schema.consent import DataExchange, DataExchangeChanged

    caller, school_id = await school_for_admin(info, input.school)
    try:
        supplier_id = await _supplier_id(info, input.supplier_code)
        async with info.context.db.transaction() as session:
            current = await store.active_exchange(
                session, school_id, supplier_id, input.role, input.data_type
            )
            row, changed = await change(session, current, school_id, supplier_id, caller)
            if changed:
                await audit(
                    session,
                    actor(caller, _role_of(caller)),
                    action,
                    "data_exchange",
                    row.id,
                    school_id=school_id,
                    detail={
                        "supplier": input.supplier_code,
                        "role": input.role.value,
                        "dataType": input.data_type.value,
                    },
                )
    except DomainError as error:
        return error_payload(error)
    return DataExchangeChanged(data_exchange=DataExchange.from_row(row), changed=changed)


async def activate(info: Info, input: DataExchangeInput) -> Any:
    if input.role not in RECEIVERS[input.data_type]:
        return error_payload(
            DomainError(
                StatusCode.OTHER,
                f"a {input.role.value} does not receive {input.data_type.value} (DOMAIN.md §7)",
                field="role",
            )
        )

    async def change(
        session: Any, current: Any, school_id: int, supplier_id: int, caller: Principal
    ) -> tuple[Any, bool]:
        if current is not None:
            return current, False  # already active: nothing written
        row = await store.add_exchange(
            session,
            school_id,
            supplier_id,
            input.role,
            input.data_type,
            caller.supplier_code,
            actor(caller, _role_of(caller)),
        )
        return row, True

    return await _change_exchange(info, input, change, "dataExchange.activate")


async def revoke(info: Info, input: DataExchangeInput) -> Any:
    async def change(
        session: Any, current: Any, school_id: int, supplier_id: int, caller: Principal
    ) -> tuple[Any, bool]:
        if current is None:
            raise DomainError(
                StatusCode.OTHER, "no active data exchange to revoke", field="dataType"
            )
        return await store.revoke_exchange(session, current, actor(caller, _role_of(caller))), True

    return await _change_exchange(info, input, change, "dataExchange.revoke")


async def register(info: Info, input: ProcessingAgreementInput) -> Any:
    from schema.consent import ProcessingAgreement, ProcessingAgreementRegistered

    caller, school_id = await school_for_admin(info, input.school)
    try:
        if input.valid_until is not None and input.valid_until < input.valid_from:
            raise DomainError(
                StatusCode.OTHER, "validUntil lies before validFrom", field="validUntil"
            )
        supplier_id = await _supplier_id(info, input.supplier_code)
        async with info.context.db.transaction() as session:
            row = await store.add_agreement(
                session,
                school_id,
                supplier_id,
                input.reference,
                input.valid_from,
                input.valid_until,
                actor(caller, _role_of(caller)),
            )
            await audit(
                session,
                actor(caller, _role_of(caller)),
                "processingAgreement.register",
                "processing_agreement",
                row.id,
                school_id=school_id,
                detail={"supplier": input.supplier_code, "reference": input.reference},
            )
    except DomainError as error:
        return error_payload(error)
    return ProcessingAgreementRegistered(processing_agreement=ProcessingAgreement.from_row(row))
