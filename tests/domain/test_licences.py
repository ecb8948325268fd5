"""Licence lifecycle, access and the licence term's month arithmetic."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from domain.entitlements import EntitlementStatus
from domain.errors import DomainError, StatusCode, TransitionNotAllowed
from domain.licences import (
    ALLOWED,
    LicenceAction,
    LicenceStatus,
    LicenceTerm,
    add_months,
    effective_licence_status,
    has_access,
    transition,
)

EXPECTED = {
    (LicenceStatus.ACTIVATED, LicenceAction.BLOCK): LicenceStatus.BLOCKED,
    (LicenceStatus.BLOCKED, LicenceAction.UNBLOCK): LicenceStatus.ACTIVATED,
}


def test_allowed_table():
    assert dict(ALLOWED) == EXPECTED


@pytest.mark.parametrize(("pair", "target"), EXPECTED.items(), ids=str)
def test_allowed_licence_transitions(pair, target):
    assert transition(*pair) is target


@pytest.mark.parametrize(
    ("current", "action"),
    [p for p in itertools.product(LicenceStatus, LicenceAction) if p not in EXPECTED],
    ids=str,
)
def test_forbidden_licence_transitions_raise(current, action):
    with pytest.raises(TransitionNotAllowed, match=f"a licence that is {current}") as info:
        transition(current, action)
    assert info.value.code is StatusCode.OTHER
    assert info.value.current_status is current


EXP = date(2025, 7, 31)


@pytest.mark.parametrize(
    ("stored", "today", "entitlement", "expected"),
    [
        (LicenceStatus.ACTIVATED, date(2025, 7, 31), None, LicenceStatus.ACTIVATED),
        (LicenceStatus.ACTIVATED, date(2025, 8, 1), None, LicenceStatus.EXPIRED),
        (LicenceStatus.BLOCKED, date(2025, 8, 1), None, LicenceStatus.BLOCKED),
        (
            LicenceStatus.ACTIVATED,
            date(2025, 1, 1),
            EntitlementStatus.BLOCKED,
            LicenceStatus.BLOCKED,
        ),
        (
            LicenceStatus.ACTIVATED,
            date(2025, 1, 1),
            EntitlementStatus.CANCELLED,
            LicenceStatus.ACTIVATED,
        ),
    ],
)
def test_effective_licence_status(stored, today, entitlement, expected):
    assert effective_licence_status(stored, EXP, today, entitlement_status=entitlement) is expected


@pytest.mark.parametrize(
    ("status", "today", "entitlement", "expected"),
    [
        (LicenceStatus.ACTIVATED, date(2025, 7, 31), EntitlementStatus.LINK_READY, True),
        (LicenceStatus.ACTIVATED, date(2025, 8, 1), EntitlementStatus.LINK_READY, False),
        (LicenceStatus.BLOCKED, date(2025, 1, 1), EntitlementStatus.LINK_READY, False),
        (LicenceStatus.ACTIVATED, date(2025, 1, 1), EntitlementStatus.BLOCKED, False),
        (LicenceStatus.ACTIVATED, date(2025, 1, 1), EntitlementStatus.CANCELLED, True),
        (LicenceStatus.ACTIVATED, date(2025, 1, 1), EntitlementStatus.ENDED, True),
        (LicenceStatus.EXPIRED, date(2025, 1, 1), EntitlementStatus.LINK_READY, False),
    ],
    ids=[
        "active-on-expiration-day",
        "expired-day-after",
        "licence-blocked",
        "entitlement-blocked",
        "cancelled-entitlement-keeps-licences-working",
        "ended-entitlement-keeps-licences-working",
        "derived-expired-passed-in",
    ],
)
def test_has_access(status, today, entitlement, expected):
    assert has_access(status, EXP, today, entitlement) is expected


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 8, 15), 12, date(2025, 8, 15)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2024, 12, 31), 2, date(2025, 2, 28)),
        (date(2024, 12, 1), 1, date(2025, 1, 1)),
        (date(2024, 1, 15), 0, date(2024, 1, 15)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(1900, 1, 31), 1, date(1900, 2, 28)),
        (date(2000, 1, 31), 1, date(2000, 2, 29)),
    ],
)
def test_add_months_clamps_to_month_end(start, months, expected):
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    ("min_date", "months", "activated", "expected"),
    [
        (date(2025, 7, 31), None, date(2024, 9, 1), date(2025, 7, 31)),
        (None, 12, date(2024, 1, 31), date(2025, 1, 31)),
        (None, 1, date(2024, 1, 31), date(2024, 2, 29)),
        (date(2025, 7, 31), 6, date(2024, 9, 1), date(2025, 7, 31)),
        (date(2025, 7, 31), 12, date(2024, 9, 1), date(2025, 9, 1)),
        (date(2025, 3, 1), 1, date(2025, 1, 31), date(2025, 3, 1)),
    ],
    ids=[
        "fixed-date-only",
        "duration-only",
        "duration-clamps-leap-year",
        "both-minimum-wins",
        "both-duration-wins",
        "both-clamped-duration-still-before-minimum",
    ],
)
def test_licence_term_expiration_date(min_date, months, activated, expected):
    assert LicenceTerm(min_date, months).expiration_date(activated) == expected


@pytest.mark.parametrize(
    ("min_date", "months", "code", "field"),
    [
        (None, None, StatusCode.FIELD_MISSING, "licenceTerm.minExpirationDate"),
        (None, 0, StatusCode.OTHER, "licenceTerm.durationMonths"),
        (date(2025, 1, 1), -2, StatusCode.OTHER, "licenceTerm.durationMonths"),
    ],
)
def test_licence_term_validation(min_date, months, code, field):
    with pytest.raises(DomainError) as info:
        LicenceTerm(min_date, months)
    assert info.value.code is code
    assert info.value.field == field


def test_licence_term_problems_use_the_given_prefix():
    (problem,) = LicenceTerm.problems(None, 0, prefix="orderLines.3.licenceTerm")
    assert problem.field == "orderLines.3.licenceTerm.durationMonths"
