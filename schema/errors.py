"""Errors that reach the top-level `errors` list with a machine-readable code.

Expected, per-input problems are NOT raised: mutation payloads return typed
error objects (see `schema/payloads.py`). What is raised here is about the call
itself: no or bad token (UNAUTHENTICATED), a role the caller lacks
(FORBIDDEN, SEM transport code 3 "scope required"), a school that has not
activated the data exchange (CONSENT_REQUIRED, transport code 4), limits.
Anything else is unexpected and masked in production.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError

from domain.errors import TransportCode


class GatewayError(GraphQLError):
    """An error the caller is meant to read; never masked."""

    code = "BAD_REQUEST"
    transport_code: int | None = None

    def __init__(self, message: str, **extra: Any) -> None:
        extensions: dict[str, Any] = {"code": self.code, **extra}
        if self.transport_code is not None:
            extensions["statusCode"] = self.transport_code
        super().__init__(message, extensions=extensions)


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    code = "FORBIDDEN"
    transport_code = int(TransportCode.SCOPE_REQUIRED)


class ConsentRequired(GatewayError):
    code = "CONSENT_REQUIRED"
    transport_code = int(TransportCode.CONSENT_REQUIRED)


def person_consent_required() -> ConsentRequired:
    """The answer to a caller related to a person it may not see (one text for the
    direct lookups and every nested path)."""
    return ConsentRequired(
        "consent required: the pupil's school has not activated the data exchange "
        "SCHOOL_ORGANISATION for this supplier, or has no valid processing agreement"
    )


def entitlement_consent_required() -> ConsentRequired:
    """The answer to a recipient of an entitlement whose school withholds its consent
    (a read of the entitlement, or the answer to a step on it, first or repeated)."""
    return ConsentRequired(
        "consent required: the school has revoked or never activated the data exchange "
        "ENTITLEMENTS for this supplier, or has no valid processing agreement"
    )


class BadInput(GatewayError):
    code = "BAD_USER_INPUT"


class RateLimited(GatewayError):
    code = "RATE_LIMITED"
