"""Who receives an entitlement's events, role by role, from one table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain.entitlements import RecipientRole
from domain.roles import DataType, Role
from domain.visibility import (
    NOW,
    AgreementSpan,
    ConsentHistory,
    EntitlementFacts,
    ExchangeSpan,
    Moment,
    SchoolConsent,
    Viewer,
    may_see,
    may_see_event,
)

SHOP, PUBLISHER, PORTAL, OTHER_PORTAL, DASHBOARD, SCHOOL = 1, 2, 3, 4, 5, 100

ENTITLEMENT = EntitlementFacts(
    school_id=SCHOOL,
    seller_id=SHOP,
    publisher_id=PUBLISHER,
    recipients=frozenset(
        {
            (PUBLISHER, RecipientRole.LICENSOR),
            (PORTAL, RecipientRole.PORTAL),
            (DASHBOARD, RecipientRole.DASHBOARD),
        }
    ),
)


def consent(*suppliers: tuple[int, Role], mandates: tuple[int, ...] = ()) -> SchoolConsent:
    return SchoolConsent(
        activations=frozenset(
            (supplier, role, data_type)
            for supplier, role in suppliers
            for data_type in (DataType.ENTITLEMENTS, DataType.ACTIVATIONS)
        ),
        mandates=frozenset(mandates),
    )


FULL = consent((PORTAL, Role.PORTAL), (DASHBOARD, Role.DASHBOARD), mandates=(PORTAL, DASHBOARD))
NONE = SchoolConsent()
NO_MANDATE = consent((PORTAL, Role.PORTAL), (DASHBOARD, Role.DASHBOARD))


def viewer(supplier: int, *roles: Role, school: int | None = None) -> Viewer:
    return Viewer(supplier, frozenset(roles), school)


@pytest.mark.parametrize(
    ("who", "school_consent", "expected"),
    [
        # The shop that sold it and the publisher's licence office: no consent needed.
        (viewer(SHOP, Role.SELLER), NONE, True),
        (viewer(PUBLISHER, Role.LICENSOR), NONE, True),
        # Another shop, another licence office: never.
        (viewer(99, Role.SELLER), FULL, False),
        (viewer(99, Role.LICENSOR), FULL, False),
        # A recipient portal or dashboard: only with activation and mandate.
        (viewer(PORTAL, Role.PORTAL), FULL, True),
        (viewer(PORTAL, Role.PORTAL), NO_MANDATE, False),
        (viewer(PORTAL, Role.PORTAL), NONE, False),
        (viewer(DASHBOARD, Role.DASHBOARD), FULL, True),
        (viewer(DASHBOARD, Role.DASHBOARD), NONE, False),
        # A portal the entitlement was not sent to, even with the school's consent.
        (viewer(OTHER_PORTAL, Role.PORTAL), consent((OTHER_PORTAL, Role.PORTAL)), False),
        # A recipient in one role does not see it through another role it holds.
        (viewer(PORTAL, Role.DASHBOARD), FULL, False),
        # The school itself, and only its own.
        (viewer(50, Role.SCHOOL, school=SCHOOL), NONE, True),
        (viewer(50, Role.SCHOOL, school=SCHOOL + 1), NONE, False),
        # The administration system receives no entitlements.
        (viewer(60, Role.SIS), FULL, False),
        # The operator sees everything.
        (viewer(70, Role.OPERATOR), NONE, True),
        # Several roles: the most permissive decides.
        (viewer(PORTAL, Role.SELLER, Role.PORTAL), FULL, True),
    ],
)
def test_who_receives_an_entitlements_events(
    who: Viewer, school_consent: SchoolConsent, expected: bool
) -> None:
    assert may_see(who, ENTITLEMENT, school_consent) is expected


def test_activations_need_their_own_data_exchange() -> None:
    entitlements_only = SchoolConsent(
        activations=frozenset({(PORTAL, Role.PORTAL, DataType.ENTITLEMENTS)}),
        mandates=frozenset({PORTAL}),
    )
    portal = viewer(PORTAL, Role.PORTAL)
    assert may_see(portal, ENTITLEMENT, entitlements_only, DataType.ENTITLEMENTS)
    assert not may_see(portal, ENTITLEMENT, entitlements_only, DataType.ACTIVATIONS)
    assert may_see(viewer(SHOP, Role.SELLER), ENTITLEMENT, NONE, DataType.ACTIVATIONS)


def test_a_private_purchase_reaches_no_portal() -> None:
    private = EntitlementFacts(
        school_id=None,
        seller_id=SHOP,
        publisher_id=PUBLISHER,
        recipients=frozenset({(PORTAL, RecipientRole.PORTAL)}),
    )
    assert not may_see(viewer(PORTAL, Role.PORTAL), private, NONE)
    assert may_see(viewer(SHOP, Role.SELLER), private, NONE)


# --- consent over time ---------------------------------------------------------------------

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 2)


def at(position: int | None, minutes: int = 0) -> Moment:
    when = T0 + timedelta(minutes=minutes)
    return Moment(None if position is None else (position, position), when)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (at(10), at(20), True),  # by position
        (at(20), at(10), False),
        (at(20, minutes=0), at(10, minutes=5), False),  # position wins over time
        (at(None, 0), at(10, 5), True),  # no position: by time
        (at(None, 5), at(10, 0), False),
        (at(None, 5), at(10, 5), True),  # the same moment counts as before
        (at(10), NOW, True),  # everything recorded precedes now
        (at(None, 10**6), NOW, True),
    ],
)
def test_a_moment_precedes_another_by_position_else_by_time(
    first: Moment, second: Moment, expected: bool
) -> None:
    assert first.precedes(second) is expected


ACTIVE_10_TO_20 = ExchangeSpan(PORTAL, Role.PORTAL, DataType.ENTITLEMENTS, at(10), at(20))


@pytest.mark.parametrize(
    ("span", "moment", "expected"),
    [
        (ACTIVE_10_TO_20, at(5), False),  # before the activation
        (ACTIVE_10_TO_20, at(15), True),
        (ACTIVE_10_TO_20, at(25), False),  # after the revocation
        (ACTIVE_10_TO_20, NOW, False),
        (ExchangeSpan(PORTAL, Role.PORTAL, DataType.ENTITLEMENTS, at(10)), NOW, True),
    ],
)
def test_an_exchange_is_active_between_its_activation_and_revocation(
    span: ExchangeSpan, moment: Moment, expected: bool
) -> None:
    assert span.active_at(moment) is expected


MANDATE = AgreementSpan(PORTAL, at(10), date(2026, 11, 1), date(2026, 11, 30))


@pytest.mark.parametrize(
    ("moment", "day", "expected"),
    [
        (at(5), DAY, False),  # registered later
        (at(15), DAY, True),
        (at(15), date(2026, 10, 31), False),  # before its validity
        (at(15), date(2026, 12, 1), False),  # after it
        (NOW, date(2026, 11, 30), True),
    ],
)
def test_a_processing_agreement_counts_from_its_registration_for_its_days(
    moment: Moment, day: date, expected: bool
) -> None:
    assert MANDATE.valid_at(moment, day) is expected


def test_an_open_ended_processing_agreement_stays_valid() -> None:
    assert AgreementSpan(PORTAL, at(10), DAY).valid_at(NOW, date(2040, 1, 1))


HISTORY = ConsentHistory(
    exchanges=(
        ExchangeSpan(PORTAL, Role.PORTAL, DataType.ENTITLEMENTS, at(10), at(20)),
        ExchangeSpan(PORTAL, Role.PORTAL, DataType.ENTITLEMENTS, at(30)),  # activated again
    ),
    agreements=(AgreementSpan(PORTAL, at(1), date(2026, 1, 1)),),
)


@pytest.mark.parametrize(
    ("happened", "handed_over", "expected"),
    [
        (at(15), None, True),  # live, while active
        (at(25), None, False),  # live, while revoked
        (at(35), None, True),  # live, after the new activation
        (at(15), NOW, True),  # replay now (active again): what live gave
        (at(25), NOW, False),  # replay of the revoked window: never
        (at(15), at(25), False),  # handed over while revoked: not then
    ],
)
def test_an_event_is_judged_at_its_moment_and_at_its_hand_over(
    happened: Moment, handed_over: Moment | None, expected: bool
) -> None:
    assert (
        may_see_event(
            Viewer(PORTAL, frozenset({Role.PORTAL})),
            ENTITLEMENT,
            HISTORY,
            happened,
            DAY,
            DataType.ENTITLEMENTS,
            handed_over=None if handed_over is None else (handed_over, DAY),
        )
        is expected
    )


def test_the_shop_needs_no_history() -> None:
    assert may_see_event(
        Viewer(SHOP, frozenset({Role.SELLER})),
        ENTITLEMENT,
        ConsentHistory(),
        at(25),
        DAY,
        DataType.ENTITLEMENTS,
        handed_over=(NOW, DAY),
    )
