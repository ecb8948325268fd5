"""Registering suppliers' event endpoints and asking for seeds (issue 18.1, 18.5).

A supplier manages its own endpoints; the operator those of any supplier. Every
change is one transaction with its audit row; the audit row names the fields
that changed, never a secret. Secrets are encrypted before they reach the
session (db/secrets.py) and are never part of an answer.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from db import events, suppliers
from db import push as store
from db.outbox import audit
from db.secrets import SecretBox
from domain.endpoints import check_registration
from domain.errors import DomainError, StatusCode
from domain.events import EventKind
from domain.identifiers import OrgLevel
from resolvers import lookup
from resolvers.auth import Principal, principal
from resolvers.writes import refusal
from schema.errors import BadInput
from schema.lookups import OrganisationIdentifierInput
from schema.push import (
    PushEndpoint,
    PushEndpointChangeInput,
    PushEndpointInput,
    PushEndpointPayload,
    PushEndpointRemoved,
    PushEndpointRemovePayload,
    PushEndpointSaved,
    PushSeed,
    PushSeedPayload,
    PushSeedRequested,
)

KNOWN_KINDS = frozenset(k.value for k in EventKind)


def _poke(info: Info, endpoint_id: int | None = None) -> None:
    """Tell this process's deliverer at once (others see it at their next lease round)."""
    request = info.context.request
    service = getattr(getattr(request, "app", None), "state", None)
    service = getattr(service, "push", None) if service is not None else None
    if service is not None:
        service.poke(endpoint_id)


def _not_found(endpoint_id: Any) -> DomainError:
    return DomainError(
        StatusCode.ENTITLEMENT_UNKNOWN, f"no push endpoint {endpoint_id} of yours", field="id"
    )


async def _owned(info: Info, caller: Principal, endpoint_id: Any) -> store.PushEndpoint:
    try:
        key = int(endpoint_id)
    except (TypeError, ValueError):
        raise _not_found(endpoint_id) from None
    row = await info.context.db.run(lambda s: store.endpoint(s, key))
    if row is None or not caller.owns(row.supplier_id):
        raise _not_found(endpoint_id)
    return row


async def endpoints(info: Info) -> list[store.PushEndpoint]:
    caller = await principal(info.context)
    owner = None if caller.is_operator else caller.supplier_id
    return await info.context.db.run(lambda s: store.endpoints(s, owner))


async def endpoint(info: Info, endpoint_id: Any) -> store.PushEndpoint | None:
    caller = await principal(info.context)
    try:
        return await _owned(info, caller, endpoint_id)
    except DomainError:
        return None


async def register(info: Info, input: PushEndpointInput) -> PushEndpointPayload:

    caller = await principal(info.context)
    settings = info.context.settings
    try:
        supplier_id = caller.supplier_id
        if input.supplier_code is not None and input.supplier_code != caller.supplier_code:
            if not caller.is_operator:
                raise DomainError(
                    StatusCode.OTHER,
                    "only the operator registers an endpoint for another supplier",
                    field="supplierCode",
                )
            found = await info.context.db.run(lambda s: suppliers.by_code(s, input.supplier_code))
            if found is None:
                raise DomainError(
                    StatusCode.OTHER,
                    f"no supplier has code {input.supplier_code!r}",
                    field="supplierCode",
                )
            supplier_id = found[0]
        kinds = [k.value for k in input.kinds] if input.kinds is not None else None
        check_registration(
            url=input.url,
            auth=input.auth.name,
            secret=input.secret,
            token_url=input.token_url,
            client_id=input.client_id,
            scope=input.scope,
            batch_size=input.batch_size,
            kinds=kinds,
            known_kinds=KNOWN_KINDS,
            private_allowed=settings.push_private_allowed,
        )
        box = SecretBox(settings.push_secret_key)
        async with info.context.db.transaction() as session:
            # A new endpoint receives what happens from now on; the state before
            # comes with a seed request.
            start = await events.stable_head(session)
            row = await store.add_endpoint(
                session,
                supplier_id=supplier_id,
                url=input.url,
                auth=input.auth.name,
                token_url=input.token_url,
                client_id=input.client_id,
                scope=input.scope,
                secret_cipher=box.seal(input.secret),
                kinds=kinds,
                batch_size=input.batch_size,
                cursor_tx=start[0],
                cursor_id=start[1],
            )
            await audit(
                session,
                caller.actor,
                "pushEndpoint.register",
                "push_endpoint",
                row.id,
                detail={"url": input.url, "auth": input.auth.value, "supplierId": supplier_id},
            )
    except DomainError as error:
        return refusal(error, None, PushEndpointPayload)
    _poke(info, row.id)
    return PushEndpointSaved(endpoint=PushEndpoint.from_row(row))


_CHANGEABLE = ("url", "auth", "token_url", "client_id", "scope", "batch_size", "enabled")


async def change(info: Info, input: PushEndpointChangeInput) -> PushEndpointPayload:

    caller = await principal(info.context)
    settings = info.context.settings
    try:
        current = await _owned(info, caller, input.id)
        values: dict[str, Any] = {}
        for name in _CHANGEABLE:
            value = getattr(input, name)
            if value is not None:
                values[name] = value.value if name == "auth" else value
        if input.all_kinds:
            values["kinds"] = None
        elif input.kinds is not None:
            values["kinds"] = [k.value for k in input.kinds]
        auth = values.get("auth", current.auth)
        if auth == "OAUTH2" and current.auth != "OAUTH2" and input.secret is None:
            raise DomainError(
                StatusCode.FIELD_MISSING,
                "switching to OAuth 2.0 needs the client secret",
                field="secret",
            )
        if auth == "SIGNED" and current.auth != "SIGNED" and input.secret is None:
            raise DomainError(
                StatusCode.FIELD_MISSING, "switching to signing needs the secret", field="secret"
            )
        check_registration(
            url=values.get("url"),
            auth=auth,
            secret=input.secret,
            token_url=values.get("token_url", current.token_url) if auth == "OAUTH2" else None,
            client_id=values.get("client_id", current.client_id) if auth == "OAUTH2" else None,
            scope=values.get("scope"),
            batch_size=values.get("batch_size"),
            kinds=values.get("kinds"),
            known_kinds=KNOWN_KINDS,
            private_allowed=settings.push_private_allowed,
        )
        changed = sorted(values)
        if input.secret is not None:
            values["secret_cipher"] = SecretBox(settings.push_secret_key).seal(input.secret)
            changed.append("secret")
        async with info.context.db.transaction() as session:
            row = await store.change_endpoint(session, current.id, values)
            await audit(
                session,
                caller.actor,
                "pushEndpoint.change",
                "push_endpoint",
                row.id,
                detail={"changed": changed, "url": row.url},
            )
    except DomainError as error:
        return refusal(error, None, PushEndpointPayload)
    _poke(info, row.id)
    return PushEndpointSaved(endpoint=PushEndpoint.from_row(row))


async def retry_now(info: Info, endpoint_id: Any) -> PushEndpointPayload:
    """Clear the schedule: the next attempt goes at once (after the receiver's
    operator fixed what was wrong)."""

    caller = await principal(info.context)
    try:
        current = await _owned(info, caller, endpoint_id)
        async with info.context.db.transaction() as session:
            row = await store.change_endpoint(
                session, current.id, {"failures": 0, "next_attempt_at": None, "paused_until": None}
            )
            await audit(
                session,
                caller.actor,
                "pushEndpoint.retryNow",
                "push_endpoint",
                row.id,
            )
    except DomainError as error:
        return refusal(error, None, PushEndpointPayload)
    _poke(info, row.id)
    return PushEndpointSaved(endpoint=PushEndpoint.from_row(row))


async def remove(info: Info, endpoint_id: Any) -> PushEndpointRemovePayload:

    caller = await principal(info.context)
    try:
        current = await _owned(info, caller, endpoint_id)
        async with info.context.db.transaction() as session:
            await store.remove_endpoint(session, current.id)
            await audit(
                session,
                caller.actor,
                "pushEndpoint.remove",
                "push_endpoint",
                current.id,
                detail={"url": current.url},
            )
    except DomainError as error:
        return refusal(error, None, PushEndpointRemovePayload)
    _poke(info)
    return PushEndpointRemoved(id=strawberry.ID(str(current.id)))


async def request_seed(
    info: Info, endpoint_id: Any, school: OrganisationIdentifierInput
) -> PushSeedPayload:
    caller = await principal(info.context)
    try:
        current = await _owned(info, caller, endpoint_id)
        found = await lookup.find_organisation(
            info.context.db, school.scheme, school.value, OrgLevel.PROVIDER
        )
        if not isinstance(found, lookup.OrgFound):
            message = str(found.error) if isinstance(found, lookup.Malformed) else found.message
            raise BadInput(message, field="school", statusCode=int(StatusCode.SCHOOL_UNKNOWN))
        async with info.context.db.transaction() as session:
            row = await store.add_seed(session, current.id, found.row.id, caller.supplier_code)
            await audit(
                session,
                caller.actor,
                "pushSeed.request",
                "push_endpoint",
                current.id,
                school_id=found.row.id,
            )
    except DomainError as error:
        return refusal(error, None, PushSeedPayload)
    _poke(info, current.id)
    return PushSeedRequested(seed=PushSeed.from_row(row))

