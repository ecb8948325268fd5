"""The licence (Licentie): one person's right to use a product, and its term.

A licence is created by the licence office when the decision tree grants a person
access on an entitlement (DOMAIN.md §6). Its lifecycle (DOMAIN.md §5)::

    ACTIVATED --BLOCK--> BLOCKED --UNBLOCK--> ACTIVATED
    ACTIVATED, past expirationDate: EXPIRED (derived, never stored)

``expirationDate`` is inclusive: the portal keeps the access link visible *until*
that date (seed 003, step 27), so the licence is expired from the day after.

Blocking a whole entitlement does not rewrite its licences: ``has_access()`` and
``effective_licence_status()`` take the entitlement's status into account. So
unblocking the entitlement restores exactly the licences that were not blocked one
by one, and a licence the seller blocked individually stays blocked.

The licence term of a delivery fixes each licence's ``expirationDate``:
``minExpirationDate`` (a fixed date, e.g. the end of the school year) and/or
``durationMonths`` (counted from the activation day in calendar months). With both,
the later date wins: "min" is a floor, the duration gives late activators their
full term.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType

from domain.entitlements import EntitlementStatus
from domain.errors import DomainError, FieldError, StatusCode, TransitionNotAllowed


class LicenceStatus(StrEnum):
    """Stored statuses ACTIVATED and BLOCKED; EXPIRED is derived and never stored."""

    ACTIVATED = "ACTIVATED"
    BLOCKED = "BLOCKED"
    #: Derived by ``effective_licence_status()``; never stored.
    EXPIRED = "EXPIRED"


class LicenceAction(StrEnum):
    BLOCK = "BLOCK"
    UNBLOCK = "UNBLOCK"


ALLOWED: Mapping[tuple[LicenceStatus, LicenceAction], LicenceStatus] = MappingProxyType(
    {
        (LicenceStatus.ACTIVATED, LicenceAction.BLOCK): LicenceStatus.BLOCKED,
        (LicenceStatus.BLOCKED, LicenceAction.UNBLOCK): LicenceStatus.ACTIVATED,
    }
)


def transition(current: LicenceStatus, action: LicenceAction) -> LicenceStatus:
    """Apply ``action`` to the stored status; raises ``TransitionNotAllowed`` (99).

    An expired licence can still be blocked and unblocked: the stored status is what
    changes, and a block must survive a later extension of the term.
    """
    try:
        return ALLOWED[(current, action)]
    except KeyError:
        raise TransitionNotAllowed(
            current, action, f"cannot {action.lower()} a licence that is {current}"
        ) from None


def effective_licence_status(
    stored: LicenceStatus,
    expiration_date: date,
    today: date,
    *,
    entitlement_status: EntitlementStatus | None = None,
) -> LicenceStatus:
    """The status to show: BLOCKED if it or its entitlement is blocked, EXPIRED after
    ``expirationDate``, else the stored status.

    Blocked wins over expired because it is the more specific answer to "why can this
    pupil not get in", and it is what a seller must undo.
    """
    if stored is LicenceStatus.BLOCKED or entitlement_status is EntitlementStatus.BLOCKED:
        return LicenceStatus.BLOCKED
    if today > expiration_date:
        return LicenceStatus.EXPIRED
    return stored


def has_access(
    status: LicenceStatus,
    expiration_date: date,
    today: date,
    entitlement_status: EntitlementStatus,
) -> bool:
    """Access is granted while ACTIVATED, not past ``expirationDate`` and the
    entitlement is not BLOCKED. A CANCELLED or ENDED entitlement keeps its licences
    working: cancelling only stops new activations (DOMAIN.md §5)."""
    return (
        status is LicenceStatus.ACTIVATED
        and today <= expiration_date
        and entitlement_status is not EntitlementStatus.BLOCKED
    )


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months, the day clamped to the month's end.

    31 January + 1 month is 28 February (29 in a leap year); 29 February + 12 months
    is 28 February. Negative ``months`` count backwards.
    """
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


@dataclass(frozen=True)
class LicenceTerm:
    """How long each licence of an entitlement lasts; at least one part is given."""

    min_expiration_date: date | None
    duration_months: int | None

    def __post_init__(self) -> None:
        problems = self.problems(self.min_expiration_date, self.duration_months)
        if problems:
            first = problems[0]
            raise DomainError(first.code, first.message, field=first.field)

    @staticmethod
    def problems(
        min_expiration_date: date | None,
        duration_months: int | None,
        *,
        prefix: str = "licenceTerm",
    ) -> tuple[FieldError, ...]:
        """Every problem with raw term input, with field paths under ``prefix``.

        Neither part given is code 1 on ``{prefix}.minExpirationDate`` (the usual
        way to state a term); a duration below one month is 99 on
        ``{prefix}.durationMonths``.
        """
        errors: list[FieldError] = []
        if min_expiration_date is None and duration_months is None:
            errors.append(
                FieldError(
                    StatusCode.FIELD_MISSING,
                    f"{prefix}.minExpirationDate",
                    "a licence term needs minExpirationDate or durationMonths",
                )
            )
        if duration_months is not None and duration_months < 1:
            errors.append(
                FieldError(
                    StatusCode.OTHER,
                    f"{prefix}.durationMonths",
                    f"durationMonths must be at least 1, got {duration_months}",
                )
            )
        return tuple(errors)

    def expiration_date(self, activated_on: date) -> date:
        """The ``expirationDate`` of a licence activated on ``activated_on``.

        Both parts given: the later of ``minExpirationDate`` and activation plus the
        duration. One part: that one. A fixed ``minExpirationDate`` alone may lie
        before a late activation; the delivery validation refuses such a term when
        it ends before ``activationUntilDate``.
        """
        by_duration = (
            add_months(activated_on, self.duration_months)
            if self.duration_months is not None
            else None
        )
        if self.min_expiration_date is None:
            assert by_duration is not None  # guaranteed by __post_init__
            return by_duration
        if by_duration is None:
            return self.min_expiration_date
        return max(self.min_expiration_date, by_duration)
