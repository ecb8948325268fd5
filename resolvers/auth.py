"""Authentication and the permission checks, each kind in one place.

Every root field of the schema carries one of the permission classes built by
`requires(...)`: the token must be valid, its supplier registered, and the
supplier must hold one of the roles the field names (the token's scopes
intersected with the roles registered for the supplier). On top of that, for the
resolvers that name a school: `require_school` (may the caller read this school's
data of a kind: its consent, `db/access.py`) and `managed_school` (may the caller
manage this school's consent: `Principal.manages`).
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket
from strawberry.permission import BasePermission
from strawberry.types import Info

from db import access
from db import suppliers as supplier_queries
from domain.consent import Access
from domain.errors import StatusCode
from domain.identifiers import OrgLevel
from domain.roles import DataType, Principal, Role
from resolvers import lookup
from resolvers.clock import today
from resolvers.context import Context
from schema.errors import (
    BadInput,
    ConsentRequired,
    Forbidden,
    GatewayError,
    RateLimited,
    Unauthenticated,
)
from schema.lookups import OrganisationIdentifierInput


async def principal(context: Context) -> Principal:
    """Resolve (once per request) the caller's supplier; raise when unknown."""
    if context.principal is not None:
        return context.principal
    if context.caller is None:
        if context.response is not None and hasattr(context.response, "status_code"):
            context.response.status_code = 401
        raise Unauthenticated(context.auth_error or "missing bearer token")
    caller = context.caller
    if context.limiter is not None:
        if context.rate_wait is None:
            context.rate_wait = await context.limiter.acquire(caller.supplier_code)
        wait = context.rate_wait
        if wait:
            if context.response is not None and not isinstance(context.response, WebSocket):
                context.response.status_code = 429
                context.response.headers["Retry-After"] = str(max(1, round(wait)))
            raise RateLimited(
                f"rate limit exceeded for {caller.supplier_code!r}: retry in {wait:.1f} s",
                retryAfter=round(wait, 3),
            )
    cache = context.supplier_cache

    def read() -> Any:
        return context.db.run(lambda s: supplier_queries.registration(s, caller.supplier_code))

    row = await (cache.lookup(caller.supplier_code, read) if cache is not None else read())
    if row is None:
        if context.response is not None and hasattr(context.response, "status_code"):
            context.response.status_code = 401
        raise Unauthenticated(f"unknown supplier {caller.supplier_code!r}")
    supplier_id, registered = row.supplier_id, row.roles
    granted = frozenset(role for role in caller.roles if role in registered)
    if not granted:
        raise Forbidden(
            f"supplier {caller.supplier_code!r} is not registered for the scopes "
            f"{sorted(r.value for r in caller.roles)} of its token"
        )
    school_id = None
    if Role.SCHOOL in granted:
        school_id = await _token_school(context, caller.school)
        if school_id not in row.schools:
            # The registry says which schools a school account speaks for
            # (supplier_school); a token naming another school is refused.
            raise Forbidden(
                f"supplier {caller.supplier_code!r} is not registered as an administrator "
                f"of the school {caller.school!r} named in its token"
            )
    found = Principal(
        supplier_id=supplier_id,
        roles=granted,
        school_id=school_id,
        supplier_code=caller.supplier_code,
        school=caller.school,
    )
    context.principal = found
    return found


async def _token_school(context: Context, claim: str | None) -> int:
    """A school administrator's token must name one school (any RIO identifier)."""
    if not claim:  # gateway/tokens.py refuses such a token already
        _status(context, 401)
        raise Unauthenticated("a token with the school scope must carry a `school` claim")
    found = await lookup.find_organisation(context.db, None, claim, OrgLevel.PROVIDER)
    if not isinstance(found, lookup.OrgFound):
        _status(context, 401)
        raise Unauthenticated(f"the token's school {claim!r} is not one known school")
    return found.row.id


def _status(context: Context, code: int) -> None:
    if context.response is not None and hasattr(context.response, "status_code"):
        context.response.status_code = code


def requires(*roles: Role) -> type[BasePermission]:
    """A permission class: the caller must be authenticated and hold one of `roles`
    (the operator holds every role). With no roles, any authenticated caller."""
    names = ", ".join(role.value for role in roles) or "any role"

    class RequiresRole(BasePermission):
        message = f"this field requires the scope {names}"
        required_roles = frozenset(roles)

        async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
            found = await principal(info.context)
            if roles and not found.has(*roles):
                raise Forbidden(
                    f"scope required: this field needs one of [{names}]; "
                    f"the caller has [{', '.join(sorted(r.value for r in found.roles))}]"
                )
            return True

    RequiresRole.__name__ = f"Requires_{'_'.join(r.value for r in roles) or 'any'}"
    return RequiresRole


# --- a named school -------------------------------------------------------------------------


async def require_school(info: Info, ids: list[int], data_type: DataType, shown: str) -> None:
    """Refuse, with the agreed 'consent required', a school the caller may not read
    `data_type` of: never an empty list that hides the reason."""
    caller, day = await principal(info.context), today()
    answers = [
        await info.context.db.run(
            lambda s, i=i: access.school_access(s, caller, day, i, data_type)
        )
        for i in ids
    ]
    refusal = school_refusal(answers, data_type, shown)
    if refusal is not None:
        raise refusal


def school_refusal(answers: list[Access], data_type: DataType, shown: str) -> GatewayError | None:
    """The error for a named school (`shown` as the caller named it) given the
    access answers for the organisations it names; None when one is allowed.
    One text for the resolvers and the compiled reads."""
    if Access.ALLOWED in answers:
        return None
    if Access.CONSENT_REQUIRED in answers:
        return ConsentRequired(
            f"consent required: school {shown!r} has not activated the data exchange "
            f"{data_type.value} for this supplier, or has no valid processing agreement with it"
        )
    return Forbidden(f"scope required: this caller cannot read {data_type.value} of {shown!r}")


async def managed_school(
    info: Info, identifier: OrganisationIdentifierInput
) -> tuple[Principal, int]:
    """The school whose consent a call manages (`Principal.manages`): a school
    administrator its own, the operator any."""
    caller = await principal(info.context)
    found = await lookup.find_organisation(
        info.context.db, identifier.scheme, identifier.value, OrgLevel.PROVIDER
    )
    if not isinstance(found, lookup.OrgFound):
        message = str(found.error) if isinstance(found, lookup.Malformed) else found.message
        raise BadInput(message, field="school", statusCode=int(StatusCode.SCHOOL_UNKNOWN))
    if not caller.manages(found.row.id):
        raise Forbidden("a school administrator manages the data exchanges of its own school only")
    return caller, found.row.id
