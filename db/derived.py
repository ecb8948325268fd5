"""SQL twins of the derived values of `domain/` (statuses that are never stored),
for statements that build answers in the database (`compiler/`). Each takes SQL
expressions for the stored values and "today" and gives the same answer as the
Python rule beside it; `tests/compiler/test_derived.py` holds each pair equal for
every branch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, literal_column, or_

from db.dashboard import effective_status
from domain.entitlements import EntitlementStatus
from domain.licences import LicenceStatus

__all__ = ["effective_licence_status", "effective_status", "has_access", "licences_available"]


def _text(value: str) -> Any:
    return literal_column(f"'{value}'")


def effective_licence_status(
    stored: Any, expiration_date: Any, today: Any, entitlement_status: Any
) -> Any:
    """`domain.licences.effective_licence_status`: BLOCKED if the licence or its
    entitlement is, EXPIRED after expirationDate, else the stored status."""
    blocked = _text(LicenceStatus.BLOCKED.value)
    return case(
        (
            or_(stored == blocked, entitlement_status == _text(EntitlementStatus.BLOCKED.value)),
            blocked,
        ),
        (today > expiration_date, _text(LicenceStatus.EXPIRED.value)),
        else_=stored,
    )


def has_access(stored: Any, expiration_date: Any, today: Any, entitlement_status: Any) -> Any:
    """`domain.licences.has_access`: ACTIVATED, not past expirationDate, its
    entitlement (which must exist) not BLOCKED."""
    return and_(
        stored == _text(LicenceStatus.ACTIVATED.value),
        today <= expiration_date,
        entitlement_status.is_not(None),
        entitlement_status != _text(EntitlementStatus.BLOCKED.value),
    )


def licences_available(quantity: Any, licences_used: Any) -> Any:
    """`schema.types.Entitlement.licences_available`: null for individual variants."""
    return quantity - licences_used
